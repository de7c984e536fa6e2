using Graft.Transforms;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Linked;

/// <summary>
/// Factories for linked layers: layers whose weight and bias are, at every forward pass, differentiable functions of
/// another module's current parameters, so a model holds (and trains, saves and loads) only the source's tensors.
/// </summary>
/// <remarks>
/// <para>
/// The weight of a link is <c>weightFunction(weight(source weight))</c>: a Graft <see cref="WeightTransform"/> (shape
/// changes that know the layout: channel selection, repeat-and-rescale, kernel fitting), then any differentiable
/// function; either may be omitted, and with both omitted the weight is the source's (a tie). Functions must not
/// modify their input in place.
/// </para>
/// <para>
/// Every factory checks the link before building anything, with one dry run of the functions on the source's current
/// tensors: a derived weight or bias of the wrong shape, dtype or device, a shared or derived bias from a source
/// without one, or hyperparameters that do not fit are refused with an <see cref="ArgumentException"/> naming both
/// shapes.
/// </para>
/// <para>
/// Hyperparameters (stride, padding, dilation, groups, padding mode, and the channel counts and kernel size that
/// define the expected weight shape) come from the source unless given. A transposed convolution linked to a plain
/// one (or the reverse) is a tie: the source's (out, in, k…) weight is read as (in, out, k…), so the channel counts
/// swap.
/// </para>
/// <para>
/// The default bias is <see cref="LinkedBias.Shared"/> when the source has a bias and <see cref="LinkedBias.None"/>
/// otherwise; a shared bias of the wrong size is refused rather than silently dropped.
/// </para>
/// </remarks>
public static class Link
{
    /// <summary>A Conv1d whose weight and bias derive from <paramref name="source"/>. See <see cref="Link"/> for the rules.</summary>
    public static LinkedConv Conv1d(LinkSource source, WeightTransform? weight = null, Func<Tensor, Tensor>? weightFunction = null, LinkedBias? bias = null,
        long? inChannels = null, long? outChannels = null, IReadOnlyList<long>? kernelSize = null, ConvHyperparameters? hyperparameters = null) =>
        Conv(source, false, 1, weight, weightFunction, bias, inChannels, outChannels, kernelSize, hyperparameters);

    /// <summary>
    /// A Conv2d whose weight and bias derive from <paramref name="source"/>, for example the element-wise square of
    /// another Conv2d's weight. See <see cref="Link"/> for the rules.
    /// </summary>
    public static LinkedConv Conv2d(LinkSource source, WeightTransform? weight = null, Func<Tensor, Tensor>? weightFunction = null, LinkedBias? bias = null,
        long? inChannels = null, long? outChannels = null, IReadOnlyList<long>? kernelSize = null, ConvHyperparameters? hyperparameters = null) =>
        Conv(source, false, 2, weight, weightFunction, bias, inChannels, outChannels, kernelSize, hyperparameters);

    /// <summary>A Conv3d whose weight and bias derive from <paramref name="source"/>. See <see cref="Link"/> for the rules.</summary>
    public static LinkedConv Conv3d(LinkSource source, WeightTransform? weight = null, Func<Tensor, Tensor>? weightFunction = null, LinkedBias? bias = null,
        long? inChannels = null, long? outChannels = null, IReadOnlyList<long>? kernelSize = null, ConvHyperparameters? hyperparameters = null) =>
        Conv(source, false, 3, weight, weightFunction, bias, inChannels, outChannels, kernelSize, hyperparameters);

    /// <summary>
    /// A ConvTranspose1d whose weight and bias derive from <paramref name="source"/>; from a Conv1d source it is the
    /// tied decoder (channel counts swapped). See <see cref="Link"/> for the rules.
    /// </summary>
    public static LinkedConv ConvTranspose1d(LinkSource source, WeightTransform? weight = null, Func<Tensor, Tensor>? weightFunction = null, LinkedBias? bias = null,
        long? inChannels = null, long? outChannels = null, IReadOnlyList<long>? kernelSize = null, ConvHyperparameters? hyperparameters = null) =>
        Conv(source, true, 1, weight, weightFunction, bias, inChannels, outChannels, kernelSize, hyperparameters);

    /// <summary>
    /// A ConvTranspose2d whose weight and bias derive from <paramref name="source"/>; from a Conv2d source it is the
    /// tied autoencoder's decoder: the encoder's (out, in, k, k) weight is exactly the decoder's (in, out, k, k).
    /// See <see cref="Link"/> for the rules.
    /// </summary>
    public static LinkedConv ConvTranspose2d(LinkSource source, WeightTransform? weight = null, Func<Tensor, Tensor>? weightFunction = null, LinkedBias? bias = null,
        long? inChannels = null, long? outChannels = null, IReadOnlyList<long>? kernelSize = null, ConvHyperparameters? hyperparameters = null) =>
        Conv(source, true, 2, weight, weightFunction, bias, inChannels, outChannels, kernelSize, hyperparameters);

    /// <summary>
    /// A ConvTranspose3d whose weight and bias derive from <paramref name="source"/>; from a Conv3d source it is the
    /// tied decoder. See <see cref="Link"/> for the rules.
    /// </summary>
    public static LinkedConv ConvTranspose3d(LinkSource source, WeightTransform? weight = null, Func<Tensor, Tensor>? weightFunction = null, LinkedBias? bias = null,
        long? inChannels = null, long? outChannels = null, IReadOnlyList<long>? kernelSize = null, ConvHyperparameters? hyperparameters = null) =>
        Conv(source, true, 3, weight, weightFunction, bias, inChannels, outChannels, kernelSize, hyperparameters);

    /// <summary>
    /// A Linear whose weight (out, in) and bias derive from <paramref name="source"/>. The feature counts default to
    /// the source's when it is a Linear (stock or linked) and must be given otherwise; a tied decoder is
    /// <c>weightFunction: w =&gt; w.t()</c> with the counts swapped.
    /// </summary>
    public static LinkedLinear Linear(LinkSource source, WeightTransform? weight = null, Func<Tensor, Tensor>? weightFunction = null, LinkedBias? bias = null,
        long? inFeatures = null, long? outFeatures = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        var (srcIn, srcOut) = source.Module switch
        {
            TorchSharp.Modules.Linear l => (l.in_features, l.out_features),
            LinkedLinear l => (l.InFeatures, l.OutFeatures),
            _ => ((long?)null, (long?)null),
        };
        var inF = inFeatures ?? srcIn ?? throw new ArgumentException($"A linked Linear from a {LinkSource.Describe(source.Module)} needs inFeatures.", nameof(inFeatures));
        var outF = outFeatures ?? srcOut ?? throw new ArgumentException($"A linked Linear from a {LinkSource.Describe(source.Module)} needs outFeatures.", nameof(outFeatures));
        ArgumentOutOfRangeException.ThrowIfLessThan(inF, 1, nameof(inFeatures));
        ArgumentOutOfRangeException.ThrowIfLessThan(outF, 1, nameof(outFeatures));
        var plan = LinkPlan.Check("Linear", source.Module, new LinkFunction(weight, weightFunction), DefaultBias(source, bias),
            new Graft.Checkpoints.Shape(outF, inF), new Graft.Checkpoints.Shape(outF));
        return new LinkedLinear(inF, outF, plan);
    }

    /// <summary>
    /// A linked layer shaped exactly like the stock convolution <paramref name="template"/> (its channel counts,
    /// kernel, stride, padding, dilation, groups and padding mode), whose weight and bias derive from
    /// <paramref name="source"/>. Use it to replace a layer declared the ordinary way: TorchSharp gives no clean way
    /// to make a stock module compute with a derived weight (see the README), so the template only lends its
    /// shape; its own tensors are not used, and it stays the caller's to dispose.
    /// </summary>
    public static LinkedConv Like(Convolution template, LinkSource source, WeightTransform? weight = null, Func<Tensor, Tensor>? weightFunction = null, LinkedBias? bias = null)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(source);
        if (ReferenceEquals(template, source.Module))
        {
            throw new ArgumentException($"A {template.GetType().Name} cannot be linked to itself: give the layer it should derive from as the source.", nameof(source));
        }
        var spec = ConvSpec.Of(template)!;
        var plan = LinkPlan.Check(spec.Name, source.Module, new LinkFunction(weight, weightFunction), DefaultBias(source, bias), spec.WeightShape, new Graft.Checkpoints.Shape(spec.Out));
        return new LinkedConv(spec, plan);
    }

    /// <summary>
    /// A linked Linear shaped like the stock <paramref name="template"/>, deriving from <paramref name="source"/>;
    /// see the convolution overload.
    /// </summary>
    public static LinkedLinear Like(TorchSharp.Modules.Linear template, LinkSource source, WeightTransform? weight = null, Func<Tensor, Tensor>? weightFunction = null, LinkedBias? bias = null)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(source);
        if (ReferenceEquals(template, source.Module))
        {
            throw new ArgumentException("A Linear cannot be linked to itself: give the layer it should derive from as the source.", nameof(source));
        }
        return Linear(source, weight, weightFunction, bias, template.in_features, template.out_features);
    }

    /// <summary>
    /// Starts a scope in which every linked layer computes its derived weight and bias once, like PyTorch's
    /// <c>parametrize.cached()</c>: for a step that uses one linked layer several times. Dispose it before the
    /// optimizer step (cached values do not see parameter updates).
    /// </summary>
    public static LinkedCache Cached() => new();

    private static LinkedConv Conv(LinkSource source, bool transposed, int dims, WeightTransform? weight, Func<Tensor, Tensor>? weightFunction, LinkedBias? bias,
        long? inChannels, long? outChannels, IReadOnlyList<long>? kernelSize, ConvHyperparameters? hyperparameters)
    {
        ArgumentNullException.ThrowIfNull(source);
        var name = (transposed ? "ConvTranspose" : "Conv") + dims + "d";
        var spec = ConvSpec.Resolve(name, source.Module, transposed, dims, inChannels, outChannels, kernelSize, hyperparameters);
        var plan = LinkPlan.Check(name, source.Module, new LinkFunction(weight, weightFunction), DefaultBias(source, bias), spec.WeightShape, new Graft.Checkpoints.Shape(spec.Out));
        return new LinkedConv(spec, plan);
    }

    private static LinkedBias DefaultBias(LinkSource source, LinkedBias? bias) =>
        bias ?? (LinkSource.HasBias(source.Module) ? LinkedBias.Shared : LinkedBias.None);
}
