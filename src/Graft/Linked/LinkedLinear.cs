using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Linked;

/// <summary>
/// A Linear layer whose weight (out, in) and bias are derived from a source module at every forward pass; made by
/// <see cref="Link.Linear"/>. A tied decoder is a link with the function <c>w =&gt; w.t()</c>.
/// </summary>
public sealed class LinkedLinear : LinkedLayer
{
    internal LinkedLinear(long inFeatures, long outFeatures, LinkPlan plan) : base("LinkedLinear", plan)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
    }

    /// <inheritdoc/>
    public override string LayerName => "Linear";

    /// <summary>Input features.</summary>
    public long InFeatures { get; }

    /// <summary>Output features.</summary>
    public long OutFeatures { get; }

    private protected override Shape ExpectedBiasShape => new(OutFeatures);

    /// <summary>Applies the layer with the weight and bias derived from the source's current parameters.</summary>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Numerics.NumericsGuard.Ensure();
        using var scope = NewDisposeScope();
        var weight = DerivedWeight();
        var bias = DerivedBias();
        return nn.functional.linear(input, weight, bias).MoveToOuterDisposeScope();
    }
}
