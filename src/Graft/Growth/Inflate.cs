using Graft.Transforms;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Growth;

/// <summary>
/// Turns 2-D layers into 3-D ones (I3D, Carreira and Zisserman 2017) so a pretrained image network starts a video or
/// volume network with the image network's response.
/// </summary>
public static class Inflate
{
    /// <summary>
    /// A Conv3d whose kernel is <paramref name="conv"/>'s inflated over <paramref name="time"/> frames
    /// (<see cref="Kernel.Inflate"/>), with the 2-D stride, padding, dilation, groups and bias kept on the spatial axes.
    /// </summary>
    /// <param name="conv">The 2-D convolution.</param>
    /// <param name="time">Kernel length on the new axis.</param>
    /// <param name="mode">Repeat and divide (exact on clips of identical frames) or centre slice (exact frame by frame).</param>
    /// <param name="timeStride">Stride on the new axis.</param>
    /// <param name="timePadding">
    /// Padding on the new axis; by default the one that makes <paramref name="mode"/> exact: 0 for
    /// <see cref="InflateMode.Repeat"/> (zero padding would dim the border frames), ⌊t/2⌋ for <see cref="InflateMode.CenterSlice"/>.
    /// </param>
    public static Conv3d Conv2d(Conv2d conv, long time, InflateMode mode = InflateMode.Repeat, long timeStride = 1, long? timePadding = null)
    {
        ArgumentNullException.ThrowIfNull(conv);
        ArgumentOutOfRangeException.ThrowIfLessThan(time, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(timeStride, 1);
        if (conv.padding is null)
        {
            throw new NotSupportedException("Inflating a convolution with padding 'same' is not supported; give explicit padding.");
        }
        if (conv.padding_mode != TorchSharp.PaddingModes.Zeros)
        {
            throw new NotSupportedException($"Inflating a convolution with padding mode {conv.padding_mode} is not supported; only zero padding.");
        }
        long tp = timePadding ?? (mode == InflateMode.Repeat ? 0 : time / 2);
        ArgumentOutOfRangeException.ThrowIfNegative(tp, nameof(timePadding));
        var weight = conv.weight;
        var result = nn.Conv3d(conv.in_channels, conv.out_channels, (time, conv.kernel_size[0], conv.kernel_size[1]),
            stride: (timeStride, conv.stride[0], conv.stride[1]), padding: (tp, conv.padding[0], conv.padding[1]),
            dilation: (1, conv.dilation[0], conv.dilation[1]), groups: conv.groups, bias: conv.bias is not null,
            device: weight.device, dtype: weight.dtype);
        using var noGrad = no_grad();
        using var w = Kernel.Inflate(Layout.Conv(2, (int)conv.groups), time, mode).Apply(weight.detach());
        result.weight.copy_(w);
        if (conv.bias is not null)
        {
            result.bias!.copy_(conv.bias);
        }
        return result;
    }

    /// <summary>
    /// A BatchNorm3d with <paramref name="norm"/>'s parameters, statistics and settings: per-channel normalisation does not
    /// depend on the number of spatial axes, so it is exact on any input.
    /// </summary>
    public static BatchNorm3d BatchNorm2d(BatchNorm2d norm)
    {
        ArgumentNullException.ThrowIfNull(norm);
        var weight = norm.weight;
        var result = nn.BatchNorm3d(norm.num_features, norm.eps, norm.momentum ?? 0.1, norm.affine, norm.track_running_stats,
            device: weight?.device, dtype: weight?.dtype ?? norm.running_mean?.dtype);
        result.momentum = norm.momentum;
        var source = norm.state_dict();
        using var noGrad = no_grad();
        foreach (var (name, dest) in result.state_dict())
        {
            dest.copy_(source[name]);
        }
        result.train(norm.training);
        return result;
    }

    /// <summary>
    /// A clip of <paramref name="frames"/> identical frames from images (N, C, H, W) → (N, C, T, H, W): the input on which
    /// a repeat-inflated network gives the image network's response. For verification and tests.
    /// </summary>
    public static Tensor IdenticalFrames(Tensor images, long frames)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentOutOfRangeException.ThrowIfLessThan(frames, 1);
        if (images.dim() != 4)
        {
            throw new ArgumentException($"Expected images of shape (N, C, H, W); got rank {images.dim()}.", nameof(images));
        }
        return images.unsqueeze(2).expand(images.shape[0], images.shape[1], frames, images.shape[2], images.shape[3]).contiguous();
    }
}
