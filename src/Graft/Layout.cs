using Graft.Checkpoints;

namespace Graft;

/// <summary>What kind of layer a weight tensor belongs to; decides which axis plays which role.</summary>
public enum LayerKind
{
    /// <summary>ConvNd weight: (out, in/groups, k1..kN).</summary>
    Conv,
    /// <summary>ConvTransposeNd weight: (in, out/groups, k1..kN).</summary>
    ConvTranspose,
    /// <summary>Linear weight: (out, in).</summary>
    Linear,
    /// <summary>A per-channel vector: a bias, or BatchNorm weight, bias, running_mean, running_var: (C).</summary>
    Vector,
    /// <summary>A 0-d tensor such as BatchNorm's num_batches_tracked.</summary>
    Scalar,
    /// <summary>Anything else (embeddings, attention tables …): only copied when shapes agree.</summary>
    Other,
}

/// <summary>
/// Names the axes of a weight tensor by role, so transforms never guess a role from a shape.
/// PyTorch and TorchSharp share these layouts; Keras layouts are converted explicitly with <see cref="KerasLayout"/>.
/// </summary>
/// <param name="Kind">The layer kind.</param>
/// <param name="SpatialDims">Number of kernel axes (1, 2 or 3 for convolutions; 0 otherwise).</param>
/// <param name="Groups">Convolution groups (1 for ordinary convolutions; in = out = groups for depthwise).</param>
public sealed record Layout(LayerKind Kind, int SpatialDims = 0, int Groups = 1)
{
    /// <summary>The layout of a ConvNd weight.</summary>
    public static Layout Conv(int spatialDims, int groups = 1) => new(LayerKind.Conv, CheckDims(spatialDims), CheckGroups(groups));

    /// <summary>The layout of a ConvTransposeNd weight.</summary>
    public static Layout ConvTranspose(int spatialDims, int groups = 1) => new(LayerKind.ConvTranspose, CheckDims(spatialDims), CheckGroups(groups));

    /// <summary>The layout of a Linear weight.</summary>
    public static Layout Linear { get; } = new(LayerKind.Linear);

    /// <summary>The layout of a per-channel vector (bias, BatchNorm vectors).</summary>
    public static Layout Vector { get; } = new(LayerKind.Vector);

    /// <summary>The layout of a 0-d tensor.</summary>
    public static Layout Scalar { get; } = new(LayerKind.Scalar);

    /// <summary>A tensor with no channel roles.</summary>
    public static Layout Other { get; } = new(LayerKind.Other);

    /// <summary>Rank a weight of this layout has.</summary>
    public int Rank => Kind switch
    {
        LayerKind.Conv or LayerKind.ConvTranspose => 2 + SpatialDims,
        LayerKind.Linear => 2,
        LayerKind.Vector => 1,
        LayerKind.Scalar => 0,
        _ => -1,
    };

    /// <summary>The output-channel axis, or -1 when the layout has none.</summary>
    public int OutAxis => Kind switch
    {
        LayerKind.Conv or LayerKind.Linear or LayerKind.Vector => 0,
        LayerKind.ConvTranspose => 1,
        _ => -1,
    };

    /// <summary>The input-channel axis (holding in/groups for grouped convolutions), or -1 when the layout has none.</summary>
    public int InAxis => Kind switch
    {
        LayerKind.Conv or LayerKind.Linear => 1,
        LayerKind.ConvTranspose => 0,
        _ => -1,
    };

    /// <summary>The kernel (spatial) axes, empty for non-convolutions.</summary>
    public IReadOnlyList<int> KernelAxes => Kind is LayerKind.Conv or LayerKind.ConvTranspose
        ? Enumerable.Range(2, SpatialDims).ToArray()
        : [];

    /// <summary>True for layouts with channel axes that transforms can adapt.</summary>
    public bool HasChannels => OutAxis >= 0;

    /// <summary>
    /// Number of output channels a weight of <paramref name="shape"/> describes: for a transposed convolution
    /// the out axis holds out/groups.
    /// </summary>
    public long OutChannels(Shape shape) => Kind == LayerKind.ConvTranspose ? shape[OutAxis] * Groups : shape[OutAxis];

    /// <summary>Number of input channels: the in axis holds in/groups for a convolution.</summary>
    public long InChannels(Shape shape) => Kind == LayerKind.Conv ? shape[InAxis] * Groups : shape[InAxis];

    /// <summary>
    /// The default layout for a PyTorch/TorchSharp state-dict tensor of the given rank when nothing else is known:
    /// rank ≥ 3 is a ConvNd weight, 2 a Linear weight, 1 a vector, 0 a scalar. Transposed and grouped convolutions
    /// cannot be told from a shape; callers declare them.
    /// </summary>
    public static Layout DefaultForRank(int rank) => rank switch
    {
        0 => Scalar,
        1 => Vector,
        2 => Linear,
        3 or 4 or 5 => Conv(rank - 2),
        _ => Other,
    };

    /// <summary>Throws when <paramref name="shape"/> cannot be a weight of this layout.</summary>
    public void Check(Shape shape, string what)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (Rank >= 0 && shape.Rank != Rank)
        {
            throw new ArgumentException($"{what}: shape {shape} has rank {shape.Rank}, but a {this} weight has rank {Rank}.");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        LayerKind.Conv => $"Conv{SpatialDims}d" + (Groups > 1 ? $"(groups={Groups})" : ""),
        LayerKind.ConvTranspose => $"ConvTranspose{SpatialDims}d" + (Groups > 1 ? $"(groups={Groups})" : ""),
        _ => Kind.ToString(),
    };

    private static int CheckDims(int d)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(d, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(d, 3);
        return d;
    }

    private static int CheckGroups(int g)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(g, 1);
        return g;
    }
}
