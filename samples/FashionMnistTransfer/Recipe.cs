using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

/// <summary>How BatchNorm layers behave while a pretrained network is fine-tuned.</summary>
internal enum BatchNormMode
{
    /// <summary>Batch statistics in training, running statistics updated (PyTorch's <c>model.train()</c>).</summary>
    Train,
    /// <summary>The pretrained running statistics are used and kept (BatchNorm in eval mode); γ and β still learn.</summary>
    Frozen,
}

/// <summary>The fine-tuning recipe: the same for every arm of the comparison, apart from BatchNorm (see <see cref="BatchNormFor"/>).</summary>
internal sealed record Recipe(double LearningRate, BatchNormMode BatchNorm, int WarmupEpochs, int Epochs, int Batch = 32)
{
    /// <summary>
    /// A network trained from scratch has no statistics worth freezing (its running mean is 0 and variance 1 until
    /// it trains), so it always trains its BatchNorm layers; the pretrained arms follow the recipe.
    /// </summary>
    public BatchNormMode BatchNormFor(bool pretrained) => pretrained ? BatchNorm : BatchNormMode.Train;

    public override string ToString() =>
        $"Adam lr {LearningRate:g2}, batch {Batch}, {Epochs} epochs, BatchNorm {(BatchNorm == BatchNormMode.Frozen ? "frozen (pretrained statistics)" : "trained")}"
        + (WarmupEpochs > 0 ? $", head alone for the first {WarmupEpochs} epoch(s)" : "");
}

/// <summary>Fine-tuning and accuracy.</summary>
internal static class Training
{
    /// <summary>
    /// Trains <paramref name="model"/> (its classifier is the child named <c>fc</c>) on the images for the recipe's
    /// epochs in a batch order fixed by <paramref name="seed"/>, calling <paramref name="afterEpoch"/> after each
    /// epoch with the epoch number (1-based).
    /// </summary>
    public static void Fit(nn.Module<Tensor, Tensor> model, Tensor images, Tensor labels, Recipe recipe, bool pretrained, int seed, Action<int> afterEpoch)
    {
        var all = model.parameters().ToArray();
        var head = model.named_children().Single(c => c.name == "fc").module.parameters().ToArray();
        var mode = recipe.BatchNormFor(pretrained);
        long n = images.shape[0];
        var generator = new Generator((ulong)seed);
        optim.Optimizer? optimizer = null;
        try
        {
            for (int epoch = 1; epoch <= recipe.Epochs; epoch++)
            {
                bool warmup = epoch <= recipe.WarmupEpochs;
                if (optimizer is null || epoch == recipe.WarmupEpochs + 1)
                {
                    optimizer?.Dispose();
                    optimizer = optim.Adam(warmup ? head : all, lr: recipe.LearningRate);
                }
                model.train();
                if (mode == BatchNormMode.Frozen || warmup)
                {
                    foreach (var m in model.modules().OfType<BatchNorm2d>())
                    {
                        m.eval();
                    }
                }
                using var order = randperm(n, generator: generator);
                for (long start = 0; start < n; start += recipe.Batch)
                {
                    using var scope = NewDisposeScope();
                    var index = order.narrow(0, start, Math.Min(recipe.Batch, n - start));
                    optimizer.zero_grad();
                    var loss = nn.functional.cross_entropy(model.forward(images.index_select(0, index)), labels.index_select(0, index));
                    loss.backward();
                    optimizer.step();
                }
                afterEpoch(epoch);
            }
        }
        finally
        {
            optimizer?.Dispose();
        }
    }

    /// <summary>The fraction of images whose highest-scoring class is the label (eval mode, no gradient).</summary>
    public static double Accuracy(nn.Module<Tensor, Tensor> model, Tensor images, Tensor labels)
    {
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        long correct = 0;
        for (long start = 0; start < images.shape[0]; start += 100)
        {
            long size = Math.Min(100, images.shape[0] - start);
            correct += model.forward(images.narrow(0, start, size)).argmax(1).eq(labels.narrow(0, start, size)).sum().item<long>();
        }
        return (double)correct / images.shape[0];
    }
}
