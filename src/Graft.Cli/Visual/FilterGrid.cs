using static TorchSharp.torch;

namespace Graft.Cli.Visual;

/// <summary>
/// Draws the filters of a convolution weight, PyTorch layout (out, in, k…), as a grid of tiles, so a person can see
/// what a layer learnt and what a transfer did to it.
/// </summary>
/// <remarks>
/// Values are normalised per tensor, symmetric around 0: 0 is mid-grey, +max|w| white (full colour), −max|w| black, so
/// a zero-padded kernel border shows as flat grey. Each kernel element becomes a <c>scale × scale</c> block
/// (nearest neighbour), so 3×3 kernels stay visible. Rank 3 weights (Conv1d) are drawn as 1×k strips; rank 5
/// (Conv3d) as their central depth slice.
/// </remarks>
internal static class FilterGrid
{
    /// <summary>Above this many (filter, input) tiles, <see cref="FilterGridMode.PerInput"/> falls back to the mean over inputs.</summary>
    public const int MaxPerInputTiles = 4096;

    /// <summary>Gap between tiles, in pixels.</summary>
    public const int Gap = 3;

    /// <summary>Colour of the gaps: a muted blue that no weight value maps to.</summary>
    public static readonly (byte R, byte G, byte B) GapColour = (48, 64, 112);

    /// <summary>
    /// The most pixels an image may have (4096 × 4096): its RGB raster and the bitmap encoded from it stay near 120 MB.
    /// <see cref="Render"/> refuses more; callers pick a smaller scale (<see cref="FitScale"/>) or refuse.
    /// </summary>
    public const long MaxPixels = 4096L * 4096;

    /// <summary>The default image budget (2048 × 2048 pixels): the automatic scale shrinks until the image fits it.</summary>
    public const long DefaultPixels = 2048L * 2048;

    /// <summary>
    /// The size of the image <see cref="Render"/> draws for a weight of <paramref name="shape"/> at <paramref name="scale"/>
    /// pixels per element, computed with checked arithmetic; false when it does not even fit a 64-bit count.
    /// </summary>
    public static bool TrySize(long[] shape, int scale, out long width, out long height)
    {
        ArgumentNullException.ThrowIfNull(shape);
        Check(shape, "weight");
        width = height = 0;
        try
        {
            var (cols, rows, tileW, tileH) = Layout(shape, scale);
            width = checked((cols * (tileW + Gap)) + Gap);
            height = checked((rows * (tileH + Gap)) + Gap);
            _ = checked(width * height * 3);
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    /// <summary>
    /// The largest scale from <paramref name="preferred"/> down to 1 at which the image has at most
    /// <paramref name="budget"/> pixels; null when even scale 1 has more.
    /// </summary>
    public static int? FitScale(long[] shape, int preferred, long budget = DefaultPixels)
    {
        for (var s = preferred; s >= 1; s--)
        {
            if (TrySize(shape, s, out var w, out var h) && w <= budget / h)
            {
                return s;
            }
        }
        return null;
    }

    /// <summary>Grid columns and rows and the tile size in pixels, with checked arithmetic.</summary>
    private static (long Cols, long Rows, long TileW, long TileH) Layout(long[] shape, int scale)
    {
        long outs = shape[0], ins = shape[1];
        var (kh, kw) = shape.Length == 3 ? (1L, shape[2]) : (shape[^2], shape[^1]);
        var mode = ModeFor(shape);
        bool grid = mode != FilterGridMode.PerInput || ins == 1;
        long tiles = grid ? outs : checked(outs * ins);
        long cols = grid ? (long)Math.Ceiling(Math.Sqrt(tiles)) : ins;
        long rows = grid ? (tiles + cols - 1) / Math.Max(1, cols) : outs;
        return (cols, rows, checked(kw * scale), checked(kh * scale));
    }

    /// <summary>The pixel scale that makes the larger kernel side about <paramref name="targetPixels"/> pixels.</summary>
    public static int AutoScale(long kernelSide, int targetPixels = 32) => (int)Math.Max(1, Math.Min(64, (targetPixels + kernelSide - 1) / Math.Max(1, kernelSide)));

    /// <summary>The kernel's (height, width) of a convolution weight: 1×k for rank 3, the last two axes otherwise.</summary>
    /// <exception cref="ArgumentException">The tensor has rank below 3 (not a convolution weight).</exception>
    public static (long Height, long Width) KernelSize(long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        Check(shape, "weight");
        return shape.Length == 3 ? (1, shape[2]) : (shape[^2], shape[^1]);
    }

    /// <summary>The mode <see cref="Render"/> uses for a weight of this shape.</summary>
    public static FilterGridMode ModeFor(long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        Check(shape, "weight");
        return shape[1] == 3 ? FilterGridMode.Rgb : shape[0] * shape[1] > MaxPerInputTiles ? FilterGridMode.MeanOverInputs : FilterGridMode.PerInput;
    }

    /// <summary>
    /// Draws <paramref name="weight"/> (out, in, k…). <paramref name="scale"/> pixels per kernel element (default:
    /// <see cref="AutoScale"/>); pass the same scale for two weights that are to be compared side by side.
    /// </summary>
    /// <exception cref="ArgumentException">Rank below 3, or an empty tensor.</exception>
    public static Raster Render(Tensor weight, int? scale = null, string name = "weight")
    {
        ArgumentNullException.ThrowIfNull(weight);
        var shape = weight.shape;
        Check(shape, name);
        if (weight.numel() == 0)
        {
            throw new ArgumentException($"{name}: the tensor is empty {Format(shape)}; there are no filters to draw.", nameof(weight));
        }
        using var scope = NewDisposeScope();
        var w = weight.detach().to(ScalarType.Float32).cpu();
        if (w.dim() == 3)
        {
            w = w.unsqueeze(2); // (out, in, 1, k)
        }
        else if (w.dim() > 4)
        {
            while (w.dim() > 4)
            {
                w = w.select(2, w.shape[2] / 2); // central slice of each extra leading kernel axis
            }
        }
        var mode = ModeFor(shape);
        if (mode == FilterGridMode.MeanOverInputs)
        {
            w = w.mean([1], keepdim: true);
        }
        float max = w.abs().max().item<float>();
        var norm = max > 0 ? (w / (2 * max)) + 0.5 : zeros_like(w) + 0.5;
        var values = norm.clamp(0, 1).contiguous().data<float>().ToArray();
        long outs = w.shape[0], ins = w.shape[1], kh = w.shape[2], kw = w.shape[3];
        int s = scale ?? FitScale(shape, AutoScale(Math.Max(kh, kw)), DefaultPixels) ?? 1;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(s, nameof(scale));
        if (!TrySize(shape, s, out var width, out var height) || width > MaxPixels / height)
        {
            throw new ArgumentException($"{name}: at {s} pixels per element the image would be {(width > 0 && height > 0 ? $"{width}×{height} pixels" : "too large to count")}, over the {MaxPixels} pixels Graft draws; choose a smaller scale.", nameof(scale));
        }

        // Tiles: Rgb and mean → one per filter in a square-ish grid; per-input → a row per filter, a column per input
        // (with a single input, a square grid as well).
        bool grid = mode != FilterGridMode.PerInput || ins == 1;
        long tiles = grid ? outs : outs * ins;
        long cols = grid ? (long)Math.Ceiling(Math.Sqrt(tiles)) : ins;
        long rows = grid ? (tiles + cols - 1) / cols : outs;
        long tileW = kw * s, tileH = kh * s;
        var raster = new Raster(checked((int)((cols * (tileW + Gap)) + Gap)), checked((int)((rows * (tileH + Gap)) + Gap)), GapColour);
        long planes = mode == FilterGridMode.Rgb ? 1 : (mode == FilterGridMode.MeanOverInputs ? 1 : ins);
        for (long o = 0; o < outs; o++)
        {
            for (long p = 0; p < planes; p++)
            {
                long tile = grid ? o : (o * ins) + p;
                long x0 = Gap + ((tile % cols) * (tileW + Gap)), y0 = Gap + ((tile / cols) * (tileH + Gap));
                for (long i = 0; i < kh; i++)
                {
                    for (long j = 0; j < kw; j++)
                    {
                        byte r, g, b;
                        if (mode == FilterGridMode.Rgb)
                        {
                            r = Byte(values[Index(o, 0, i, j)]);
                            g = Byte(values[Index(o, 1, i, j)]);
                            b = Byte(values[Index(o, 2, i, j)]);
                        }
                        else
                        {
                            r = g = b = Byte(values[Index(o, p, i, j)]);
                        }
                        for (long dy = 0; dy < s; dy++)
                        {
                            for (long dx = 0; dx < s; dx++)
                            {
                                raster.Set((int)(x0 + (j * s) + dx), (int)(y0 + (i * s) + dy), r, g, b);
                            }
                        }
                    }
                }
            }
        }
        return raster;

        long Index(long o, long c, long i, long j) => (((((o * ins) + c) * kh) + i) * kw) + j;
    }

    private static byte Byte(float v) => (byte)Math.Clamp((int)MathF.Round(v * 255f), 0, 255);

    private static void Check(long[] shape, string name)
    {
        if (shape.Length < 3)
        {
            throw new ArgumentException($"{name} has shape {Format(shape)}: not a convolution weight (out, in, k…); only tensors of rank 3 or more can be drawn as filters.");
        }
    }

    private static string Format(long[] shape) => "(" + string.Join(", ", shape) + ")";
}
