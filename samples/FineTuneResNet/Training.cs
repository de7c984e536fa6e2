using TorchSharp;
using static TorchSharp.torch;

/// <summary>Plain supervised training and accuracy, batch 32, Adam.</summary>
internal static class Training
{
    private const int Batch = 32;

    /// <summary>Trains <paramref name="model"/> on the images for a number of epochs (fixed batch order).</summary>
    public static void Fit(nn.Module<Tensor, Tensor> model, Tensor images, Tensor labels, int epochs, double learningRate)
    {
        model.train();
        using var optimizer = optim.Adam(model.parameters(), lr: learningRate);
        long n = images.shape[0];
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            for (long start = 0; start < n; start += Batch)
            {
                using var scope = NewDisposeScope();
                long size = Math.Min(Batch, n - start);
                optimizer.zero_grad();
                var loss = nn.functional.cross_entropy(model.forward(images.narrow(0, start, size)), labels.narrow(0, start, size));
                loss.backward();
                optimizer.step();
            }
        }
    }

    /// <summary>The fraction of images whose highest-scoring class is the label (eval mode, no gradient).</summary>
    public static double Accuracy(nn.Module<Tensor, Tensor> model, Tensor images, Tensor labels)
    {
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        long correct = 0;
        for (long start = 0; start < images.shape[0]; start += Batch)
        {
            long size = Math.Min(Batch, images.shape[0] - start);
            correct += model.forward(images.narrow(0, start, size)).argmax(1).eq(labels.narrow(0, start, size)).sum().item<long>();
        }
        return (double)correct / images.shape[0];
    }
}
