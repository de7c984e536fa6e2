using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transformers;

/// <summary>
/// Zeros of the input's shape: the output projections of a LLaMA-Pro identity block (Wu et al. 2024). The block is a
/// copy of an existing one whose <c>o_proj</c> and <c>down_proj</c> are zero, so both residual branches add nothing and
/// the block is the identity, yet its inputs are trained weights and the zeros get gradients at once.
/// </summary>
public sealed class ZeroWeights : WeightTransform
{
    /// <summary>The transform (stateless).</summary>
    public static ZeroWeights Instance { get; } = new();

    private ZeroWeights()
    {
    }

    /// <inheritdoc/>
    public override string Op => "zeros";

    /// <inheritdoc/>
    public override string Describe() => "zeroed (identity block: this residual branch adds nothing)";

    /// <inheritdoc/>
    public override Introduced Introduces => Introduced.Zeros;

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input) => input ?? throw new ArgumentNullException(nameof(input));

    /// <inheritdoc/>
    protected override Tensor ApplyCore(Tensor input) => zeros_like(input);

    /// <inheritdoc/>
    internal override AxisGather? AsGather(Shape input) => new(0, null, Zero: true);

    /// <inheritdoc/>
    public override bool HasTwin => true;

    /// <inheritdoc/>
    protected override T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape) => new T[input.Length];
}
