using Graft.Transforms;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Growth;

/// <summary>
/// Larger kernels that compute the same function: the old kernel centred in the new one with zeros around it, and the
/// padding increased by the added margin (times the dilation) so every output sees the same inputs at the same taps.
/// </summary>
public static class Enlarge
{
    /// <summary>
    /// The padding that keeps a convolution's output when its kernel grows from <paramref name="kernel"/> to
    /// <paramref name="newKernel"/> by centred zero padding: p + dilation·(k' − k)/2 per axis. Each axis must grow by
    /// an even amount (odd growth has no centred position and would shift the output).
    /// </summary>
    public static long[] Padding(IReadOnlyList<long> padding, IReadOnlyList<long> kernel, IReadOnlyList<long> newKernel, IReadOnlyList<long>? dilation = null)
    {
        ArgumentNullException.ThrowIfNull(padding);
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(newKernel);
        int n = kernel.Count;
        if (padding.Count != n || newKernel.Count != n || (dilation is not null && dilation.Count != n))
        {
            throw new ArgumentException("Padding, kernel, new kernel and dilation must have one entry per spatial axis.");
        }
        var result = new long[n];
        for (int i = 0; i < n; i++)
        {
            long grow = newKernel[i] - kernel[i];
            if (grow < 0 || grow % 2 != 0)
            {
                throw new ArgumentException($"Kernel axis {i} goes {kernel[i]}→{newKernel[i]}; a function-preserving enlargement grows each axis by an even amount.");
            }
            result[i] = padding[i] + (dilation?[i] ?? 1) * grow / 2;
        }
        return result;
    }

    /// <summary>
    /// A new Conv2d with a <paramref name="kernelSize"/>×<paramref name="kernelSize"/> kernel that computes what
    /// <paramref name="conv"/> computes (same stride, dilation, groups, padding mode and bias; padding from <see cref="Padding"/>).
    /// </summary>
    public static Conv2d Conv2d(Conv2d conv, long kernelSize) => Conv2d(conv, (kernelSize, kernelSize));

    /// <summary>Like <see cref="Conv2d(Conv2d, long)"/> with a rectangular kernel.</summary>
    public static Conv2d Conv2d(Conv2d conv, (long Height, long Width) kernelSize)
    {
        ArgumentNullException.ThrowIfNull(conv);
        long[] newKernel = [kernelSize.Height, kernelSize.Width];
        var padding = conv.padding ?? SamePadding(conv);
        var newPadding = Padding(padding, conv.kernel_size, newKernel, conv.dilation);
        var weight = conv.weight;
        var result = nn.Conv2d(conv.in_channels, conv.out_channels, (newKernel[0], newKernel[1]),
            stride: (conv.stride[0], conv.stride[1]), padding: (newPadding[0], newPadding[1]), dilation: (conv.dilation[0], conv.dilation[1]),
            padding_mode: conv.padding_mode, groups: conv.groups, bias: conv.bias is not null, device: weight.device, dtype: weight.dtype);
        using var noGrad = no_grad();
        using var w = Kernel.CenterFit(Layout.Conv(2, (int)conv.groups), newKernel).Apply(weight.detach());
        result.weight.copy_(w);
        if (conv.bias is not null)
        {
            result.bias!.copy_(conv.bias);
        }
        return result;
    }

    private static long[] SamePadding(Convolution conv)
    {
        // padding="same" keeps the size only symmetrically for odd effective kernels; that is the case we can restate.
        var p = new long[conv.kernel_size.Length];
        for (int i = 0; i < p.Length; i++)
        {
            long total = conv.dilation[i] * (conv.kernel_size[i] - 1);
            if (total % 2 != 0)
            {
                throw new NotSupportedException("A convolution with padding 'same' and an even effective kernel pads asymmetrically; give explicit padding.");
            }
            p[i] = total / 2;
        }
        return p;
    }
}
