using System.Text.RegularExpressions;
using Graft.Checkpoints;

using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>What to do with a classifier head whose class count differs.</summary>
public enum HeadRule
{
    /// <summary>Keep the target's own init for the head's weight and bias.</summary>
    Template,
    /// <summary>Keep the first classes (the rest from the template), like any other out-channel change.</summary>
    KeepFirst,
}
