using System.Text.RegularExpressions;
using Graft.Checkpoints;

using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>What to do when the target has fewer output channels than the source.</summary>
public enum OutShrinkRule
{
    /// <summary>Keep the first n (per group for grouped convolutions). Consistent across layers by construction.</summary>
    First,
    /// <summary>Keep the n channels with the largest L1 norm, in their original order; the layer's bias and BatchNorm follow.</summary>
    LargestL1,
    /// <summary>Keep the n channels with the largest L2 norm, in their original order; the layer's bias and BatchNorm follow.</summary>
    LargestL2,
}
