using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>The input-channel step of a recipe.</summary>
/// <param name="Rule">The rule applied (never Auto).</param>
/// <param name="SourceCount">Source size of the in axis.</param>
/// <param name="TargetCount">Target size of the in axis.</param>
public sealed record InStep(InChannelRule Rule, long SourceCount, long TargetCount)
{
    /// <summary>
    /// The producers' decision this layer's inputs follow (same indices, new inputs zero), or null for a rule of its own.
    /// </summary>
    public OutDecision? Follows { get; init; }

    /// <summary>Input features per followed channel (H·W after a flatten; 1 otherwise).</summary>
    public long BlockSize { get; init; } = 1;
}
