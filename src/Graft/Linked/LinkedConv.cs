using Graft.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Graft.Linked;

/// <summary>
/// A convolution (Conv1d/2d/3d or ConvTranspose1d/2d/3d) whose weight and bias are derived from a source module at
/// every forward pass; made by the <see cref="Link"/> factories. Computes what the stock TorchSharp module of the
/// same hyperparameters computes with the derived tensors.
/// </summary>
public sealed class LinkedConv : LinkedLayer
{
    // Reversed and doubled padding for F.pad when the padding mode is not zeros (the same array TorchSharp builds).
    private readonly long[] _padForMode;

    internal LinkedConv(ConvSpec spec, LinkPlan plan) : base("Linked" + spec.Name, plan)
    {
        Spec = spec;
        _padForMode = PadForMode(spec);
    }

    internal ConvSpec Spec { get; }

    /// <inheritdoc/>
    public override string LayerName => Spec.Name;

    /// <summary>True for a transposed convolution.</summary>
    public bool Transposed => Spec.Transposed;

    /// <summary>Number of spatial dimensions (1, 2 or 3).</summary>
    public int SpatialDims => Spec.Dims;

    /// <summary>The layout of the derived weight, for building transforms that act on it.</summary>
    public Layout Layout => Spec.Layout;

    /// <summary>Input channels.</summary>
    public long InChannels => Spec.In;

    /// <summary>Output channels.</summary>
    public long OutChannels => Spec.Out;

    /// <summary>Kernel size per spatial dimension.</summary>
    public IReadOnlyList<long> KernelSize => Spec.Kernel;

    /// <summary>Stride per spatial dimension.</summary>
    public IReadOnlyList<long> Stride => Spec.Stride;

    /// <summary>Explicit padding per spatial dimension, or null when <see cref="PaddingType"/> is <c>same</c>.</summary>
    public IReadOnlyList<long>? Padding => Spec.Padding;

    /// <summary>Padding by rule (<c>same</c>), or null for explicit padding.</summary>
    public Padding? PaddingType => Spec.PaddingType;

    /// <summary>Dilation per spatial dimension.</summary>
    public IReadOnlyList<long> Dilation => Spec.Dilation;

    /// <summary>Number of groups.</summary>
    public long Groups => Spec.Groups;

    /// <summary>How the input is padded.</summary>
    public PaddingModes PaddingMode => Spec.PaddingMode;

    /// <summary>Output padding of a transposed convolution (zeros otherwise).</summary>
    public IReadOnlyList<long> OutputPadding => Spec.OutputPadding;

    private protected override Shape ExpectedBiasShape => new(Spec.Out);

    private protected override Action<nn.Module>? ExtraCheck => source =>
    {
        var s = ConvSpec.Of(source) ?? throw new ArgumentException($"A linked {Spec.Name} needs a convolution source; got {LinkSource.Describe(source)}.", nameof(source));
        if (s.Dims != Spec.Dims)
        {
            throw new ArgumentException($"A linked {Spec.Name} needs a {Spec.Dims}-d convolution source; got a {s.Name}.", nameof(source));
        }
    };

    /// <summary>Runs the convolution with the weight and bias derived from the source's current parameters.</summary>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Numerics.NumericsGuard.Ensure();
        using var scope = NewDisposeScope();
        var weight = DerivedWeight();
        var bias = DerivedBias();
        return Convolve(input, weight, bias).MoveToOuterDisposeScope();
    }

    private Tensor Convolve(Tensor input, Tensor weight, Tensor? bias)
    {
        var s = Spec;
        if (s.Transposed)
        {
            var padding = s.Padding!;
            return s.Dims switch
            {
                1 => F.conv_transpose1d(input, weight, bias, s.Stride[0], padding[0], s.OutputPadding[0], s.Dilation[0], s.Groups),
                2 => F.conv_transpose2d(input, weight, bias, s.Stride, padding, s.OutputPadding, s.Dilation, s.Groups),
                _ => F.conv_transpose3d(input, weight, bias, s.Stride, padding, s.OutputPadding, s.Dilation, s.Groups),
            };
        }
        if (s.PaddingMode != PaddingModes.Zeros)
        {
            var padded = F.pad(input, _padForMode, s.PaddingMode);
            var zeros = new long[s.Dims];
            return s.Dims switch
            {
                1 => F.conv1d(padded, weight, bias, s.Stride[0], 0, s.Dilation[0], s.Groups),
                2 => F.conv2d(padded, weight, bias, s.Stride, zeros, s.Dilation, s.Groups),
                _ => F.conv3d(padded, weight, bias, s.Stride, zeros, s.Dilation, s.Groups),
            };
        }
        if (s.PaddingType is { } type)
        {
            return s.Dims switch
            {
                1 => F.conv1d_padding(input, weight, bias, s.Stride[0], type, s.Dilation[0], s.Groups),
                2 => F.conv2d_padding(input, weight, bias, s.Stride, type, s.Dilation, s.Groups),
                _ => F.conv3d_padding(input, weight, bias, s.Stride, type, s.Dilation, s.Groups),
            };
        }
        return s.Dims switch
        {
            1 => F.conv1d(input, weight, bias, s.Stride[0], s.Padding![0], s.Dilation[0], s.Groups),
            2 => F.conv2d(input, weight, bias, s.Stride, s.Padding, s.Dilation, s.Groups),
            _ => F.conv3d(input, weight, bias, s.Stride, s.Padding, s.Dilation, s.Groups),
        };
    }

    private static long[] PadForMode(ConvSpec s)
    {
        if (s.Padding is { } p)
        {
            return p.Reverse().SelectMany(v => new[] { v, v }).ToArray();
        }
        // 'same': total dilation·(k−1), the smaller half before, as TorchSharp and PyTorch do.
        var pad = new long[2 * s.Dims];
        for (int i = s.Dims - 1, j = 0; i >= 0; i--, j += 2)
        {
            long total = s.Dilation[i] * (s.Kernel[i] - 1);
            pad[j] = total / 2;
            pad[j + 1] = total - total / 2;
        }
        return pad;
    }
}
