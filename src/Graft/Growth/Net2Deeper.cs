using Graft.Checkpoints;
using Graft.Transforms;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Growth;

/// <summary>
/// Net2DeeperNet's new layers: identity layers to insert into a trained network. An identity convolution or Linear
/// placed after a ReLU (and followed by another ReLU, which is idempotent on non-negative inputs) keeps the function;
/// an identity BatchNorm keeps it in eval mode. Training then moves them away from the identity.
/// </summary>
public static class Net2Deeper
{
    /// <summary>
    /// A Conv2d from <paramref name="channels"/> to <paramref name="channels"/> that returns its input: 1 at the kernel
    /// centre from channel c to channel c, zero bias, padding ⌊k/2⌋ so the spatial size is kept.
    /// </summary>
    /// <param name="channels">Channels in and out.</param>
    /// <param name="kernelSize">An odd kernel size (the identity needs a centre).</param>
    /// <param name="bias">Whether the layer has a (zero) bias.</param>
    /// <param name="dtype">Parameter dtype (default: TorchSharp's default dtype).</param>
    /// <param name="device">Parameter device.</param>
    public static Conv2d IdentityConv2d(long channels, long kernelSize = 3, bool bias = true, ScalarType? dtype = null, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(kernelSize, 1);
        if (kernelSize % 2 == 0)
        {
            throw new ArgumentException($"An identity convolution needs an odd kernel to have a centre; got {kernelSize}.", nameof(kernelSize));
        }
        var conv = nn.Conv2d(channels, channels, kernelSize, padding: kernelSize / 2, bias: bias, dtype: dtype, device: device);
        SetIdentity(conv.weight, conv.bias, Layout.Conv(2));
        return conv;
    }

    /// <summary>A Linear layer from <paramref name="features"/> to <paramref name="features"/> that returns its input.</summary>
    public static Linear IdentityLinear(long features, bool bias = true, ScalarType? dtype = null, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(features, 1);
        var linear = nn.Linear(features, features, hasBias: bias, dtype: dtype, device: device);
        SetIdentity(linear.weight, linear.bias, Layout.Linear);
        return linear;
    }

    /// <summary>
    /// A BatchNorm2d that is the identity in eval mode: running mean 0, running variance 1 (PyTorch's own initial
    /// statistics), bias 0, and weight √(1 + eps) so that the eps added to the variance cancels.
    /// </summary>
    public static BatchNorm2d IdentityBatchNorm2d(long channels, double eps = 1e-5, double momentum = 0.1, ScalarType? dtype = null, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(eps);
        var bn = nn.BatchNorm2d(channels, eps, momentum, affine: true, track_running_stats: true, dtype: dtype, device: device);
        var shape = new Shape(channels);
        using var noGrad = no_grad();
        Set(bn.weight, Reinit.Constant(shape, Math.Sqrt(1 + eps)));
        Set(bn.bias!, Reinit.Constant(shape, 0));
        Set(bn.running_mean!, Reinit.Constant(shape, 0));
        Set(bn.running_var!, Reinit.Constant(shape, 1));
        return bn;
    }

    private static void SetIdentity(Tensor weight, Tensor? bias, Layout layout)
    {
        using var noGrad = no_grad();
        Set(weight, Reinit.Identity(layout, new Shape(weight.shape)));
        if (bias is not null)
        {
            Set(bias, Reinit.Constant(new Shape(bias.shape), 0));
        }
    }

    private static void Set(Tensor destination, WeightTransform transform)
    {
        using var value = transform.Apply(destination.detach());
        destination.copy_(value);
    }
}
