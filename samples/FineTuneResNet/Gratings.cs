using static TorchSharp.torch;

/// <summary>
/// A small synthetic image dataset: 32×32 sine gratings whose orientation is the class, at random frequency and phase,
/// with noise. RGB images get a random tint per image; grayscale ones are the same patterns in one channel.
/// </summary>
internal static class Gratings
{
    /// <summary>Makes <paramref name="count"/> images (N, C, 32, 32) and their labels; classes are evenly spaced orientations.</summary>
    public static (Tensor Images, Tensor Labels) Make(int count, int channels, int classes, long seed)
    {
        var g = new Generator((ulong)seed);
        var labels = randint(0, classes, [count], generator: g);
        var theta = labels.to_type(ScalarType.Float32) * (MathF.PI / classes);
        var freq = rand([count], generator: g) * 0.25f + 0.2f;          // cycles per pixel: 0.2–0.45
        var phase = rand([count], generator: g) * (2 * MathF.PI);
        var axis = arange(32, dtype: ScalarType.Float32);
        var y = axis.view(1, 32, 1);
        var x = axis.view(1, 1, 32);
        var along = x * theta.cos().view(-1, 1, 1) + y * theta.sin().view(-1, 1, 1);
        var wave = (along * freq.view(-1, 1, 1) * (2 * MathF.PI) + phase.view(-1, 1, 1)).sin();    // (N, 32, 32)
        var tint = channels == 1 ? ones(count, 1, 1, 1) : rand([count, channels, 1, 1], generator: g) * 0.8f + 0.2f;
        var images = wave.unsqueeze(1) * tint + randn([count, channels, 32, 32], generator: g) * 0.5f;
        return (images.detach(), labels);
    }
}
