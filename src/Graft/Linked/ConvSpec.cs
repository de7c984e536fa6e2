using Graft.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Linked;

/// <summary>Everything that defines a convolution except its tensors; resolved and checked before a link is built.</summary>
internal sealed record ConvSpec(
    bool Transposed,
    int Dims,
    long In,
    long Out,
    long[] Kernel,
    long[] Stride,
    long[]? Padding,
    Padding? PaddingType,
    long[] Dilation,
    long Groups,
    PaddingModes PaddingMode,
    long[] OutputPadding)
{
    public string Name => (Transposed ? "ConvTranspose" : "Conv") + Dims + "d";

    public Layout Layout => Transposed ? Layout.ConvTranspose(Dims, (int)Groups) : Layout.Conv(Dims, (int)Groups);

    /// <summary>(out, in/groups, k…) for a convolution, (in, out/groups, k…) for a transposed one.</summary>
    public Shape WeightShape => new(Transposed ? [In, Out / Groups, .. Kernel] : [Out, In / Groups, .. Kernel]);

    /// <summary>The spec of a stock or linked convolution, or null for anything else.</summary>
    public static ConvSpec? Of(nn.Module module) => module switch
    {
        Convolution c => new ConvSpec(
            c.transposed, c.kernel_size.Length, c.in_channels, c.out_channels, [.. c.kernel_size], [.. c.stride],
            c.padding is null ? null : [.. c.padding], c.padding_type, [.. c.dilation], c.groups, c.padding_mode,
            c.output_padding.Length == c.kernel_size.Length ? [.. c.output_padding] : new long[c.kernel_size.Length]),
        LinkedConv l => l.Spec,
        _ => null,
    };

    /// <summary>
    /// The spec of a link of kind (<paramref name="transposed"/>, <paramref name="dims"/>) from <paramref name="source"/>:
    /// everything not given explicitly comes from the source. A convolution read by a transposed one (or the reverse)
    /// is a tie: its (out, in) weight is the other's (in, out), so the channel counts swap.
    /// </summary>
    public static ConvSpec Resolve(string layer, nn.Module source, bool transposed, int dims, long? inChannels, long? outChannels, IReadOnlyList<long>? kernelSize, ConvHyperparameters? hyper)
    {
        var s = Of(source) ?? throw new ArgumentException(
            $"A linked {layer} needs a convolution source (Conv{dims}d, ConvTranspose{dims}d or a linked one); got {LinkSource.Describe(source)}.", nameof(source));
        if (s.Dims != dims)
        {
            throw new ArgumentException($"A linked {layer} needs a {dims}-d convolution source; got a {s.Name}.", nameof(source));
        }
        hyper ??= new ConvHyperparameters();
        var tied = s.Transposed != transposed;
        var inC = inChannels ?? (tied ? s.Out : s.In);
        var outC = outChannels ?? (tied ? s.In : s.Out);
        var kernel = PerDim(layer, "kernel size", kernelSize, dims) ?? s.Kernel;
        var stride = PerDim(layer, "stride", hyper.Stride, dims) ?? s.Stride;
        var dilation = PerDim(layer, "dilation", hyper.Dilation, dims) ?? s.Dilation;
        var groups = hyper.Groups ?? s.Groups;
        var (padding, paddingType) = hyper.Padding is not null ? (PerDim(layer, "padding", hyper.Padding, dims), (Padding?)null)
            : hyper.PaddingType is not null ? (null, hyper.PaddingType)
            : (s.Padding, s.PaddingType);
        PaddingModes mode;
        if (transposed)
        {
            if (paddingType == TorchSharp.Padding.Same)
            {
                throw new ArgumentException($"A linked {layer} cannot use padding 'same' (the source {s.Name} does); give explicit ConvHyperparameters.Padding.", nameof(hyper));
            }
            if (hyper.PaddingMode is { } m && m != PaddingModes.Zeros)
            {
                throw new ArgumentException($"A linked {layer} only supports zero padding mode; got {m}.", nameof(hyper));
            }
            mode = PaddingModes.Zeros;
        }
        else
        {
            mode = hyper.PaddingMode ?? (s.Transposed ? PaddingModes.Zeros : s.PaddingMode);
        }
        if (paddingType == TorchSharp.Padding.Valid || (padding is null && paddingType is null))
        {
            (padding, paddingType) = (new long[dims], null);
        }
        var outputPadding = PerDim(layer, "output padding", hyper.OutputPadding, dims) ?? (transposed && s.Transposed ? s.OutputPadding : new long[dims]);

        Positive(layer, "in channels", [inC]);
        Positive(layer, "out channels", [outC]);
        Positive(layer, "groups", [groups]);
        Positive(layer, "kernel size", kernel);
        Positive(layer, "stride", stride);
        Positive(layer, "dilation", dilation);
        if (padding is not null && padding.Any(p => p < 0))
        {
            throw new ArgumentException($"A linked {layer} needs non-negative padding; got ({string.Join(", ", padding)}).", nameof(hyper));
        }
        if (inC % groups != 0 || outC % groups != 0)
        {
            throw new ArgumentException($"A linked {layer} with {inC} inputs and {outC} outputs cannot have {groups} groups: both counts must be multiples.", nameof(hyper));
        }
        if (paddingType == TorchSharp.Padding.Same && stride.Any(x => x != 1))
        {
            throw new ArgumentException($"A linked {layer} cannot use padding 'same' with stride ({string.Join(", ", stride)}).", nameof(hyper));
        }
        if (!transposed && outputPadding.Any(p => p != 0))
        {
            throw new ArgumentException($"Output padding is for transposed convolutions; a linked {layer} cannot take it.", nameof(hyper));
        }
        return new ConvSpec(transposed, dims, inC, outC, kernel, stride, padding, paddingType, dilation, groups, mode, outputPadding);
    }

    private static long[]? PerDim(string layer, string what, IReadOnlyList<long>? values, int dims)
    {
        if (values is null)
        {
            return null;
        }
        if (values.Count != dims)
        {
            throw new ArgumentException($"A linked {layer} needs {dims} {what} value(s), one per spatial dimension; got {values.Count}.");
        }
        return [.. values];
    }

    private static void Positive(string layer, string what, long[] values)
    {
        if (values.Any(v => v < 1))
        {
            throw new ArgumentException($"A linked {layer} needs positive {what}; got ({string.Join(", ", values)}).");
        }
    }
}
