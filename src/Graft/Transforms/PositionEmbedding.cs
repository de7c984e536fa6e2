using System.Globalization;
using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>How a grid of position embeddings is resampled.</summary>
public enum PositionInterpolation
{
    /// <summary>Bicubic (timm's and Hugging Face's default).</summary>
    Bicubic,

    /// <summary>Bilinear.</summary>
    Bilinear,

    /// <summary>Nearest neighbour (no antialiasing).</summary>
    Nearest,
}

/// <summary>A grid of patches: <paramref name="Height"/> rows × <paramref name="Width"/> columns.</summary>
public readonly record struct PatchGrid(long Height, long Width)
{
    /// <summary>Number of patches.</summary>
    public long Count => checked(Height * Width);

    /// <summary>The square grid of <paramref name="patches"/> patches, or null when the count is not a square.</summary>
    public static PatchGrid? Square(long patches)
    {
        if (patches < 1)
        {
            return null;
        }
        var side = (long)Math.Round(Math.Sqrt(patches));
        return side * side == patches ? new PatchGrid(side, side) : null;
    }

    /// <summary>The grid an image of <paramref name="imageHeight"/>×<paramref name="imageWidth"/> makes with square patches of <paramref name="patch"/> pixels.</summary>
    /// <exception cref="ArgumentException">The image is not a whole number of patches.</exception>
    public static PatchGrid FromImage(long imageHeight, long imageWidth, long patch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(patch, 1);
        if (imageHeight < patch || imageWidth < patch || imageHeight % patch != 0 || imageWidth % patch != 0)
        {
            throw new ArgumentException($"An image of {imageHeight}×{imageWidth} is not a whole number of {patch}×{patch} patches.");
        }
        return new PatchGrid(imageHeight / patch, imageWidth / patch);
    }

    /// <summary>Parses <c>24</c> (square) or <c>12x16</c> (rows × columns; <c>×</c> also accepted).</summary>
    /// <exception cref="FormatException">Not a grid.</exception>
    public static PatchGrid Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Trim().Split('x', 'X', '×');
        if (parts.Length is 1 or 2
            && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var h) && h > 0
            && (parts.Length == 1 || (long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var w) && w > 0)))
        {
            return parts.Length == 1 ? new PatchGrid(h, h) : new PatchGrid(h, long.Parse(parts[1], CultureInfo.InvariantCulture));
        }
        throw new FormatException($"'{text}' is not a patch grid: expected N or HxW, e.g. 24 or 12x16.");
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Height}×{Width}";
}

/// <summary>
/// Vision-transformer position embeddings carried to another image or patch size, as timm does
/// (<c>resample_abs_pos_embed</c>, <c>resize_rel_pos_bias_table</c>): the grid part is resampled in float32 and cast back,
/// the prefix tokens (class, distillation, register tokens) are kept bit for bit. Ordinary weight transforms, so they
/// compose, and serve transfer and linked layers alike (a position embedding tied across resolutions).
/// </summary>
public static class PositionEmbedding
{
    /// <summary>
    /// Absolute position embeddings <c>(1, P + H·W, D)</c> → <c>(1, P + H'·W', D)</c>: the first
    /// <paramref name="prefixTokens"/> rows kept, the <paramref name="from"/> grid resampled to <paramref name="to"/>.
    /// </summary>
    /// <param name="from">The source grid (H×W).</param>
    /// <param name="to">The target grid (H'×W').</param>
    /// <param name="prefixTokens">Tokens before the grid (1 for a class token, 2 with DeiT's distillation token, more with registers).</param>
    /// <param name="interpolation">Resampling mode (bicubic, as timm).</param>
    /// <param name="antialias">
    /// Antialiased resampling (bilinear and bicubic only): null means as timm's <c>resample_abs_pos_embed</c>, which
    /// always passes <c>antialias=True</c>; false matches Hugging Face's <c>interpolate_pos_encoding</c>.
    /// </param>
    /// <param name="alignCorners">
    /// Corner pixels aligned (bilinear and bicubic only): torchvision's own <c>interpolate_embeddings</c> passes
    /// <c>align_corners=True</c> without antialiasing; timm and Hugging Face do not align corners.
    /// </param>
    public static WeightTransform Resample(PatchGrid from, PatchGrid to, int prefixTokens = 1, PositionInterpolation interpolation = PositionInterpolation.Bicubic, bool? antialias = null,
        bool alignCorners = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(prefixTokens);
        CheckGrid(from, nameof(from));
        CheckGrid(to, nameof(to));
        bool aa = antialias ?? interpolation != PositionInterpolation.Nearest;
        if (aa && interpolation == PositionInterpolation.Nearest)
        {
            throw new ArgumentException("Antialiasing applies to bilinear and bicubic resampling only.", nameof(antialias));
        }
        if (alignCorners && interpolation == PositionInterpolation.Nearest)
        {
            throw new ArgumentException("Aligned corners apply to bilinear and bicubic resampling only.", nameof(alignCorners));
        }
        return new AbsoluteResample(from, to, prefixTokens, interpolation, aa, alignCorners);
    }

    /// <summary>
    /// A Swin-style relative position bias table <c>((2W−1)·(2W−1), heads)</c> for a window of
    /// <paramref name="fromWindow"/> resampled for <paramref name="toWindow"/> (timm's simple table resize: bicubic,
    /// corners not aligned, float32). The matching <c>relative_position_index</c> buffer belongs to the new model: it is
    /// taken from the template, never resampled.
    /// </summary>
    public static WeightTransform ResampleRelativeBiasTable(PatchGrid fromWindow, PatchGrid toWindow)
    {
        CheckGrid(fromWindow, nameof(fromWindow));
        CheckGrid(toWindow, nameof(toWindow));
        return new RelativeTableResample(new PatchGrid((2 * fromWindow.Height) - 1, (2 * fromWindow.Width) - 1),
            new PatchGrid((2 * toWindow.Height) - 1, (2 * toWindow.Width) - 1));
    }

    /// <summary>The square window a relative position bias table of <paramref name="rows"/> rows belongs to, or null.</summary>
    public static PatchGrid? WindowOfTable(long rows) =>
        PatchGrid.Square(rows) is { } t && t.Height % 2 == 1 ? new PatchGrid((t.Height + 1) / 2, (t.Width + 1) / 2) : null;

    private static void CheckGrid(PatchGrid g, string name)
    {
        if (g.Height < 1 || g.Width < 1)
        {
            throw new ArgumentException($"A patch grid needs at least one row and column; got {g}.", name);
        }
    }

    private static Tensor Interpolate(Tensor nchw, PatchGrid to, PositionInterpolation mode, bool antialias, bool alignCorners = false) =>
        nn.functional.interpolate(nchw, size: [to.Height, to.Width],
            mode: mode switch
            {
                PositionInterpolation.Bicubic => InterpolationMode.Bicubic,
                PositionInterpolation.Bilinear => InterpolationMode.Bilinear,
                _ => InterpolationMode.Nearest,
            },
            align_corners: mode == PositionInterpolation.Nearest ? null : alignCorners,
            antialias: antialias);

    private sealed class AbsoluteResample(PatchGrid from, PatchGrid to, int prefix, PositionInterpolation mode, bool antialias, bool alignCorners) : WeightTransform
    {
        public override string Op => "pos.resample";

        public override string Describe() =>
            $"position grid {from} → {to}, {prefix} prefix token{(prefix == 1 ? "" : "s")} kept ({mode.ToString().ToLowerInvariant()}{(antialias ? ", antialiased" : "")}{(alignCorners ? ", corners aligned" : "")}, float32)";

        public override Shape OutputShape(Shape input)
        {
            if (input.Rank != 3 || input[0] != 1 || input[1] != prefix + from.Count)
            {
                throw new ArgumentException($"{Op}: expected a position embedding of shape (1, {prefix} + {from.Height}·{from.Width} = {prefix + from.Count}, D); got {input}.");
            }
            return new Shape(1, prefix + to.Count, input[2]);
        }

        protected override Tensor ApplyCore(Tensor input)
        {
            if (from == to)
            {
                return input.alias();
            }
            using var scope = NewDisposeScope();
            long d = input.shape[2];
            var grid = input.narrow(1, prefix, from.Count).to(ScalarType.Float32)
                .reshape(1, from.Height, from.Width, d).permute(0, 3, 1, 2);
            var resampled = Interpolate(grid, to, mode, antialias, alignCorners).permute(0, 2, 3, 1).reshape(1, to.Count, d).to(input.dtype);
            var result = prefix == 0 ? resampled : cat([input.narrow(1, 0, prefix), resampled], 1);
            return result.MoveToOuterDisposeScope();
        }
    }

    private sealed class RelativeTableResample(PatchGrid from, PatchGrid to) : WeightTransform
    {
        public override string Op => "pos.resample-relative-table";

        public override string Describe() => $"relative position bias table {from} → {to} (bicubic, float32)";

        public override Shape OutputShape(Shape input)
        {
            if (input.Rank != 2 || input[0] != from.Count)
            {
                throw new ArgumentException($"{Op}: expected a relative position bias table of shape ({from.Height}·{from.Width} = {from.Count}, heads); got {input}.");
            }
            return new Shape(to.Count, input[1]);
        }

        protected override Tensor ApplyCore(Tensor input)
        {
            if (from == to)
            {
                return input.alias();
            }
            using var scope = NewDisposeScope();
            long heads = input.shape[1];
            var grid = input.to(ScalarType.Float32).t().reshape(1, heads, from.Height, from.Width);
            var result = Interpolate(grid, to, PositionInterpolation.Bicubic, antialias: false)
                .reshape(heads, to.Count).t().contiguous().to(input.dtype);
            return result.MoveToOuterDisposeScope();
        }
    }
}
