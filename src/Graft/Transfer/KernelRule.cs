using System.Text.RegularExpressions;
using Graft.Checkpoints;

using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>How kernels of another size are adapted.</summary>
public enum KernelRule
{
    /// <summary>Centred zero-pad (larger) or centred crop (smaller).</summary>
    Fit,
    /// <summary>Bilinear (linear per axis) resampling.</summary>
    Bilinear,
    /// <summary>Bicubic resampling (2-D kernels).</summary>
    Bicubic,
    /// <summary>FlexiViT pseudo-inverse resize.</summary>
    PIResize,
    /// <summary>Reinitialise the whole weight (Kaiming-normal, fan_out, ReLU); the bias keeps the template's init.</summary>
    Reinit,
}
