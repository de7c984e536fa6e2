using System.Text.RegularExpressions;
using Graft.Checkpoints;

using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>How input channels are adapted.</summary>
public enum InChannelRule
{
    /// <summary>
    /// The default table: a stem (the first convolution, source inputs ≤ 4) → 1 sums, → more repeats and rescales; an interior layer keeps
    /// the first inputs when shrinking and gives new inputs zero weights when growing.
    /// </summary>
    Auto,
    /// <summary>Sum source inputs (folded modulo the target count).</summary>
    Sum,
    /// <summary>Average source inputs (folded modulo the target count).</summary>
    Mean,
    /// <summary>Repeat cyclically and multiply by source/target.</summary>
    RepeatRescale,
    /// <summary>Keep the first inputs.</summary>
    Truncate,
    /// <summary>Keep the source inputs, zero weights for the new ones.</summary>
    ZeroExtend,
}
