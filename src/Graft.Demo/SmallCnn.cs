using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Demo;

/// <summary>
/// The small network the demos carry, widen and check: conv1 (k×k) → bn1 → ReLU → conv2 (3×3) → bn2 → ReLU → global
/// average pool → flatten → fc, with torchvision-style names (conv1, bn1, conv2, bn2, fc).
/// </summary>
public static class SmallCnn
{
    /// <summary>Builds the network; padding keeps the spatial size (kernel1 odd).</summary>
    public static Sequential Create(long inputs, long width1, long kernel1, long width2, long classes) =>
        nn.Sequential(
            ("conv1", nn.Conv2d(inputs, width1, kernel1, padding: kernel1 / 2)),
            ("bn1", nn.BatchNorm2d(width1)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(width1, width2, 3, padding: 1)),
            ("bn2", nn.BatchNorm2d(width2)),
            ("relu2", nn.ReLU()),
            ("pool", nn.AdaptiveAvgPool2d(1)),
            ("flatten", nn.Flatten()),
            ("fc", nn.Linear(width2, classes)));

    /// <summary>
    /// Gives every BatchNorm running mean and variance non-default values (as training would), so that checks in eval
    /// mode would notice statistics that were not carried over.
    /// </summary>
    public static void RandomizeBatchNormStatistics(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        using var noGrad = no_grad();
        foreach (var (name, t) in module.state_dict().Where(kv => kv.Key.Contains("running_", StringComparison.Ordinal)))
        {
            t.copy_(name.EndsWith("var", StringComparison.Ordinal) ? rand(t.shape) + 0.5 : randn(t.shape) * 0.1);
        }
    }
}
