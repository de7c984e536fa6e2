using Graft.Transforms;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Growth;

/// <summary>
/// Patch embeddings of another patch size (FlexiViT, Beyer et al. 2023). A ViT's patch embedding is a convolution whose
/// kernel equals its stride; its PI-resized kernel gives each resized patch the embedding the old kernel gave the
/// original patch (exact when growing, least squares when shrinking).
/// </summary>
public static class PatchEmbedding
{
    /// <summary>
    /// A new patch-embedding Conv2d with kernel and stride <paramref name="patchSize"/>, its kernel from
    /// <see cref="Kernel.PIResize"/> and its bias copied. Feed it images resized by the same factor (per patch, with the
    /// <paramref name="basis"/> interpolation) to get the old embeddings.
    /// </summary>
    public static Conv2d Resize(Conv2d conv, long patchSize, KernelResize basis = KernelResize.Bilinear)
    {
        ArgumentNullException.ThrowIfNull(conv);
        ArgumentOutOfRangeException.ThrowIfLessThan(patchSize, 1);
        if (!conv.kernel_size.SequenceEqual(conv.stride) || conv.padding is null || conv.padding.Any(p => p != 0)
            || conv.dilation.Any(d => d != 1) || conv.groups != 1)
        {
            throw new ArgumentException("A patch embedding is a convolution with kernel = stride, no padding, no dilation and one group.", nameof(conv));
        }
        var weight = conv.weight;
        var result = nn.Conv2d(conv.in_channels, conv.out_channels, patchSize, stride: patchSize, bias: conv.bias is not null,
            device: weight.device, dtype: weight.dtype);
        using var noGrad = no_grad();
        using var w = Kernel.PIResize(Layout.Conv(2), [patchSize, patchSize], basis).Apply(weight.detach());
        result.weight.copy_(w);
        if (conv.bias is not null)
        {
            result.bias!.copy_(conv.bias);
        }
        return result;
    }
}
