using System.Text.Json;
using Graft.Checkpoints;
using System.Text.Json.Serialization;

namespace Graft.Transfer;

/// <summary>One step applied to a tensor.</summary>
/// <param name="Op">Machine name (<c>in.repeat-rescale</c>, <c>kernel.fit</c>, <c>out.truncate</c> …).</param>
/// <param name="Detail">What it did, for a person.</param>
public sealed record ReportStep(string Op, string Detail);

/// <summary>What happened to one target tensor.</summary>
public sealed record ReportTarget
{
    /// <summary>Target tensor name.</summary>
    public required string Name { get; init; }
    /// <summary>Target dtype (safetensors spelling).</summary>
    public required string DType { get; init; }
    /// <summary>Target shape.</summary>
    public required IReadOnlyList<long> Shape { get; init; }
    /// <summary>What happened (<c>copied</c>, <c>cast</c>, <c>adapted</c>, <c>reinitialised</c> or <c>kept</c> in JSON).</summary>
    public required TargetStatus Status { get; init; }
    /// <summary>Source tensor used, or null.</summary>
    public string? Source { get; init; }
    /// <summary>Source dtype, or null.</summary>
    public string? SourceDType { get; init; }
    /// <summary>Source shape, or null.</summary>
    public IReadOnlyList<long>? SourceShape { get; init; }
    /// <summary>The layer (name prefix).</summary>
    public required string Layer { get; init; }
    /// <summary>The layout the tensor was read with (<c>Conv2d</c>, <c>Linear</c>, <c>Vector</c> …).</summary>
    public required string Layout { get; init; }
    /// <summary>Why this status.</summary>
    public required string Reason { get; init; }
    /// <summary>Transforms applied, in order (empty unless adapted or reinitialised).</summary>
    public IReadOnlyList<ReportStep> Steps { get; init; } = [];
    /// <summary>For a selection other than first-n: the source channel of each target channel (-1 = new).</summary>
    public IReadOnlyList<long>? ChannelIndices { get; init; }
    /// <summary>True when every value comes from the source (what <c>--strict</c> requires).</summary>
    public required bool Complete { get; init; }
    /// <summary>How the source was found: <c>exact</c>, <c>prefix</c>, <c>rename</c> or <c>structural</c> (a guess); null when none was.</summary>
    public MatchKind? Match { get; init; }
    /// <summary>The rule or signature behind <see cref="Match"/>.</summary>
    public string? MatchReason { get; init; }
    /// <summary>The channel group whose decision this tensor applies or follows, if any.</summary>
    public string? Group { get; init; }
    /// <summary>The planned input-channel step, if any.</summary>
    public InStep? In { get; init; }
    /// <summary>The planned kernel step, if any.</summary>
    public KernelStep? Kernel { get; init; }
    /// <summary>The out-channel decision applied or followed, if any.</summary>
    public OutDecision? Out { get; init; }
    /// <summary>
    /// What the target tensor is in its network (<c>conv-weight</c>, <c>norm-var</c>, <c>head-bias</c> … in JSON), read once
    /// from the template's names and shapes before planning: the planner decides by it.
    /// </summary>
    public TensorRole Role { get; init; }
    /// <summary>
    /// Why the target is not carried over from its source (<c>no-source</c>, <c>new-head</c>, <c>incompatible</c> … in
    /// JSON), or null when it is (copied, cast or adapted).
    /// </summary>
    public TargetCause? Cause { get; init; }
}
