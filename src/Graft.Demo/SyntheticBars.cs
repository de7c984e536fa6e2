using static TorchSharp.torch;

namespace Graft.Demo;

/// <summary>
/// Built-in synthetic image tasks for the transfer-learning demo, made from anti-aliased bars with noise, so the demo
/// needs no download and every run sees the same images for a given seed.
/// </summary>
/// <remarks>
/// <para>Pretraining task (<see cref="Orientation"/>): RGB 16×16 images of one bar of random colour, length, thickness
/// and position on a random dark background; 8 classes, the bar's orientation in steps of 22.5°.</para>
/// <para>Target task (<see cref="Pairs"/>): grayscale 16×16 images of two bars; 4 classes by their orientations: "+"
/// (horizontal and vertical), "×" (both diagonals), "=" (two horizontal), "‖" (two vertical). Related (both are about
/// oriented edges) but another input, another label set, and harder: the bars are thinner and the noise stronger.</para>
/// </remarks>
public static class SyntheticBars
{
    /// <summary>Image side in pixels.</summary>
    public const int Size = 16;

    /// <summary>Classes of the pretraining task: orientation k·22.5°, k = 0…7.</summary>
    public const int OrientationClasses = 8;

    /// <summary>Names of the target task's classes, in label order.</summary>
    public static IReadOnlyList<string> PairNames { get; } = ["+", "×", "=", "‖"];

    /// <summary>
    /// <paramref name="count"/> RGB images (count, 3, 16, 16) in [0, 1] and their orientation labels (int64), balanced
    /// over the 8 classes.
    /// </summary>
    public static (Tensor Images, Tensor Labels) Orientation(int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var rng = new Random(seed);
        var x = new float[count * 3 * Size * Size];
        var y = new long[count];
        var alpha = new float[Size * Size];
        for (int n = 0; n < count; n++)
        {
            int label = n % OrientationClasses;
            y[n] = label;
            Array.Clear(alpha);
            double angle = (label * Math.PI / OrientationClasses) + Jitter(rng, 0.06);
            Bar(alpha, 7.5 + Jitter(rng, 2), 7.5 + Jitter(rng, 2), angle, 9 + (rng.NextDouble() * 4), 1.4 + (rng.NextDouble() * 0.8));
            for (int c = 0; c < 3; c++)
            {
                float fg = (float)(0.35 + (0.65 * rng.NextDouble())), bg = (float)(0.25 * rng.NextDouble());
                int off = ((n * 3) + c) * Size * Size;
                for (int i = 0; i < alpha.Length; i++)
                {
                    x[off + i] = (bg * (1 - alpha[i])) + (fg * alpha[i]) + (float)(0.08 * Gauss(rng));
                }
            }
        }
        return (tensor(x, [count, 3, Size, Size]), tensor(y, [count]));
    }

    /// <summary>
    /// <paramref name="count"/> grayscale images (count, 1, 16, 16) of bar pairs and their labels (int64) in
    /// <see cref="PairNames"/> order, balanced over the 4 classes.
    /// </summary>
    public static (Tensor Images, Tensor Labels) Pairs(int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var rng = new Random(seed);
        var x = new float[count * Size * Size];
        var y = new long[count];
        var alpha = new float[Size * Size];
        for (int n = 0; n < count; n++)
        {
            int label = n % PairNames.Count;
            y[n] = label;
            Array.Clear(alpha);
            double cx = 7.5 + Jitter(rng, 1.5), cy = 7.5 + Jitter(rng, 1.5);
            double len = 8 + (rng.NextDouble() * 5), thick = 1.1 + (rng.NextDouble() * 0.6);
            switch (label)
            {
                case 0: // + : horizontal and vertical through one centre
                    Bar(alpha, cx, cy, Jitter(rng, 0.08), len, thick);
                    Bar(alpha, cx, cy, (Math.PI / 2) + Jitter(rng, 0.08), len, thick);
                    break;
                case 1: // × : both diagonals
                    Bar(alpha, cx, cy, (Math.PI / 4) + Jitter(rng, 0.08), len, thick);
                    Bar(alpha, cx, cy, (3 * Math.PI / 4) + Jitter(rng, 0.08), len, thick);
                    break;
                default: // = and ‖ : two parallel bars, 4 to 7 pixels apart
                    double a = label == 2 ? 0 : Math.PI / 2, gap = 2 + (rng.NextDouble() * 1.5);
                    double nx = -Math.Sin(a) * gap, ny = Math.Cos(a) * gap;
                    Bar(alpha, cx + nx, cy + ny, a + Jitter(rng, 0.08), len, thick);
                    Bar(alpha, cx - nx, cy - ny, a + Jitter(rng, 0.08), len, thick);
                    break;
            }
            float fg = (float)(0.5 + (0.5 * rng.NextDouble())), bg = (float)(0.3 * rng.NextDouble());
            int off = n * Size * Size;
            for (int i = 0; i < alpha.Length; i++)
            {
                x[off + i] = (bg * (1 - alpha[i])) + (fg * alpha[i]) + (float)(0.2 * Gauss(rng));
            }
        }
        return (tensor(x, [count, 1, Size, Size]), tensor(y, [count]));
    }

    // Adds an anti-aliased bar (a segment of the given length and thickness through (cx, cy) at angle a, y down) to alpha.
    private static void Bar(float[] alpha, double cx, double cy, double a, double length, double thickness)
    {
        double dx = Math.Cos(a), dy = -Math.Sin(a), half = length / 2;
        for (int py = 0; py < Size; py++)
        {
            for (int px = 0; px < Size; px++)
            {
                double rx = px - cx, ry = py - cy;
                double along = Math.Clamp((rx * dx) + (ry * dy), -half, half);
                double ex = rx - (along * dx), ey = ry - (along * dy);
                double d = Math.Sqrt((ex * ex) + (ey * ey));
                float v = (float)Math.Clamp((thickness / 2) + 0.5 - d, 0, 1);
                alpha[(py * Size) + px] = Math.Max(alpha[(py * Size) + px], v);
            }
        }
    }

    private static double Jitter(Random rng, double amplitude) => ((rng.NextDouble() * 2) - 1) * amplitude;

    private static double Gauss(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
