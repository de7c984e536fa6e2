using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Linked;

/// <summary>
/// A layer whose weight and bias are, at every forward pass, differentiable functions of another module's current
/// parameters. It owns no parameters: the model's <c>parameters()</c>, <c>state_dict()</c> and saved files hold the
/// source's tensors once, gradients flow through the function into the source, and an optimizer step on the source
/// changes this layer's output.
/// </summary>
/// <remarks>
/// The source is kept in a one-element array, not in a field of type Module, because TorchSharp's
/// <c>RegisterComponents</c> registers Module-typed fields as submodules (which would count and save the source
/// twice). The source's parameters are read through the module at every call and never captured: TorchSharp's
/// <c>.to()</c> replaces Parameter objects when it converts or moves them.
/// </remarks>
public abstract class LinkedLayer : nn.Module<Tensor, Tensor>
{
    // A holder, not a Module field: RegisterComponents skips it, so the source is not a submodule.
    private readonly nn.Module[] _sourceHolder = new nn.Module[1];
    private readonly LinkFunction _weightFunction;
    private readonly LinkedBias _linkedBias;
    private readonly LinkFunction _biasFunction;

    private protected LinkedLayer(string name, LinkPlan plan) : base(name)
    {
        _sourceHolder[0] = plan.Source;
        _weightFunction = plan.Weight;
        _linkedBias = plan.Bias;
        _biasFunction = new LinkFunction(plan.Bias.Transform, plan.Bias.Function);
        WeightShape = plan.WeightShape;
        RegisterComponents();
    }

    /// <summary>The module the weight and bias are derived from.</summary>
    public nn.Module Source => _sourceHolder[0];

    /// <summary>The Graft transform applied to the source weight (before <see cref="WeightFunction"/>), or null.</summary>
    public WeightTransform? WeightTransform => _weightFunction.Transform;

    /// <summary>The function applied to the source weight after <see cref="WeightTransform"/>, or null.</summary>
    public Func<Tensor, Tensor>? WeightFunction => _weightFunction.Function;

    /// <summary>How the bias is obtained.</summary>
    public LinkedBias Bias => _linkedBias;

    /// <summary>True when this layer adds a bias.</summary>
    public bool HasBias => _linkedBias.Kind != LinkedBiasKind.None;

    /// <summary>The shape of the derived weight, checked once at construction.</summary>
    public Shape WeightShape { get; }

    /// <summary>The layer this link stands for, for messages (<c>Conv2d</c>, <c>ConvTranspose2d</c>, <c>Linear</c>).</summary>
    public abstract string LayerName { get; }

    /// <summary>
    /// The chain of sources from this layer's source to the first module that is not a linked layer; shows what a
    /// chained link ultimately reads, and is what <see cref="Relink"/> checks for cycles.
    /// </summary>
    public IReadOnlyList<nn.Module> SourceChain
    {
        get
        {
            var chain = new List<nn.Module>();
            for (var m = Source; ; m = ((LinkedLayer)m).Source)
            {
                chain.Add(m);
                if (m is not LinkedLayer || chain.Count > 10_000)
                {
                    return chain;
                }
            }
        }
    }

    /// <summary>
    /// The derived weight as of now, differentiable with respect to the source. Inside a <see cref="Link.Cached"/>
    /// scope it is computed once and reused until the scope ends.
    /// </summary>
    public Tensor DerivedWeight() => LinkedCache.Current is { } cache
        ? cache.GetOrAdd(this, 0, () => LinkSource.Weight(Source), _weightFunction)
        : _weightFunction.Apply(LinkSource.Weight(Source));

    /// <summary>The derived bias as of now, or null when this layer has no bias. Cached like <see cref="DerivedWeight"/>.</summary>
    public Tensor? DerivedBias()
    {
        if (_linkedBias.Kind == LinkedBiasKind.None)
        {
            return null;
        }
        if (_linkedBias.Kind == LinkedBiasKind.Shared)
        {
            return LinkSource.Bias(Source);
        }
        return LinkedCache.Current is { } cache
            ? cache.GetOrAdd(this, 1, SourceBias, _biasFunction)
            : _biasFunction.Apply(SourceBias());
    }

    /// <summary>
    /// Points this layer at another source with the same weight and bias shapes, after the same checks as at
    /// construction (a dry run of the functions). Refuses this layer itself and any source whose chain leads back to
    /// this layer: a cycle would recurse forever in forward. On failure nothing changes.
    /// </summary>
    public void Relink(LinkSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        CheckNoCycle(this, source.Module);
        var plan = LinkPlan.Check(LayerName, source.Module, _weightFunction, _linkedBias, WeightShape, ExpectedBiasShape, ExtraCheck);
        _sourceHolder[0] = plan.Source;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"linked {LayerName} {WeightShape} from {LinkSource.Describe(Source)}: weight = {_weightFunction}, bias = {_linkedBias}";

    /// <summary>The bias shape the layer needs: (out).</summary>
    private protected abstract Shape ExpectedBiasShape { get; }

    /// <summary>Additional checks on a new source beyond shapes (kind, dimensions); null when there are none.</summary>
    private protected virtual Action<nn.Module>? ExtraCheck => null;

    /// <summary>Throws when <paramref name="source"/> is <paramref name="layer"/> or leads back to it.</summary>
    internal static void CheckNoCycle(LinkedLayer? layer, nn.Module source)
    {
        for (var m = source; m is not null; m = (m as LinkedLayer)?.Source)
        {
            if (layer is not null && ReferenceEquals(m, layer))
            {
                throw new ArgumentException(ReferenceEquals(source, layer)
                    ? $"A linked {layer.LayerName} cannot be its own source."
                    : $"Linking this {layer.LayerName} to that source would make a cycle: the source's chain already reads from this layer.",
                    nameof(source));
            }
            if (m is not LinkedLayer)
            {
                return;
            }
        }
    }

    private Tensor SourceBias() =>
        LinkSource.Bias(Source) ?? throw new InvalidOperationException($"The source of this linked {LayerName} no longer has a bias.");
}
