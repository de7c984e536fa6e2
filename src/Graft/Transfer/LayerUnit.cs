using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>What computes in a <see cref="LayerUnit"/>.</summary>
public enum UnitKind
{
    /// <summary>A convolution, with its BatchNorm when one follows.</summary>
    Conv,
    /// <summary>A fully connected layer (Linear, ONNX Gemm or MatMul).</summary>
    Linear,
}

/// <summary>The BatchNorm that follows a convolution: its four vectors (by tensor name), its count and epsilon.</summary>
/// <param name="Scale">γ.</param>
/// <param name="Shift">β.</param>
/// <param name="Mean">Running mean.</param>
/// <param name="Var">Running variance.</param>
/// <param name="Count">num_batches_tracked (state dicts only).</param>
/// <param name="Epsilon">The ε added to the variance (ONNX: the node's attribute; a state dict does not store it: 1e-5, PyTorch's and TorchSharp's default).</param>
/// <param name="Layer">The BatchNorm's layer (state dict) or node name (ONNX).</param>
public sealed record NormTensors(string Scale, string Shift, string Mean, string Var, string? Count, double Epsilon, string Layer);

/// <summary>
/// One unit of a network's computation: a convolution [→ BatchNorm] or a linear layer, with the tensors that hold it
/// and its place in the data flow.
/// </summary>
/// <param name="Kind">Conv or linear.</param>
/// <param name="Name">The layer (state dict) or node (ONNX) name.</param>
/// <param name="Weight">The weight tensor's name.</param>
/// <param name="WeightShape">The weight's shape as stored (see <see cref="TransposedWeight"/>).</param>
/// <param name="Bias">The bias tensor's name, if any.</param>
public sealed record LayerUnit(UnitKind Kind, string Name, string Weight, Shape WeightShape, string? Bias)
{
    /// <summary>The BatchNorm that follows, if any.</summary>
    public NormTensors? Norm { get; init; }

    /// <summary>The unit lies on a residual block's shortcut branch (a projection), not its main path.</summary>
    public bool Shortcut { get; init; }

    /// <summary>A linear weight stored (in, out), as ONNX Gemm with transB = 0 and MatMul keep it: transposed when carried.</summary>
    public bool TransposedWeight { get; init; }

    /// <summary>The (out, in) shape of the weight, whichever way it is stored.</summary>
    public Shape LogicalShape => TransposedWeight ? new Shape(WeightShape[1], WeightShape[0]) : WeightShape;

    /// <summary>How the unit was recognised, for the plan.</summary>
    public string Evidence { get; init; } = "";

    /// <summary>A depthwise (or grouped with one input per group) convolution: kernel with one input channel.</summary>
    public bool OneInputPerGroup => Kind == UnitKind.Conv && WeightShape[1] == 1 && WeightShape.Rank >= 3 && WeightShape.Skip(2).Any(k => k > 1);

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({(Kind == UnitKind.Conv ? "conv" : "linear")} {LogicalShape}{(Norm is null ? "" : " + BatchNorm")})";
}

/// <summary>A residual block: the main path's units in data-flow order, the shortcut's units (empty for an identity shortcut).</summary>
/// <param name="Name">The join (ONNX Add node) or the block's name prefix (state dict).</param>
/// <param name="Main">Main-path units, in order.</param>
/// <param name="Shortcut">Shortcut units, in order.</param>
public sealed record ResidualBlock(string Name, IReadOnlyList<LayerUnit> Main, IReadOnlyList<LayerUnit> Shortcut)
{
    /// <summary>Every unit, main path first.</summary>
    public IEnumerable<LayerUnit> Units => Main.Concat(Shortcut);
}
