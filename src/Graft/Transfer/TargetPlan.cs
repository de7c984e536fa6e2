using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>The plan for one target tensor; checked against shapes before any data moves.</summary>
public sealed record TargetPlan
{
    /// <summary>The target tensor.</summary>
    public required TensorInfo Target { get; init; }

    /// <summary>The source tensor it comes from, if any.</summary>
    public TensorInfo? Source { get; init; }

    /// <summary>What happens.</summary>
    public required TargetStatus Status { get; init; }

    /// <summary>Why, in a sentence.</summary>
    public required string Reason { get; init; }

    /// <summary>The layout the tensor was read with.</summary>
    public required Layout Layout { get; init; }

    /// <summary>The layer (name prefix) the tensor belongs to.</summary>
    public required string Layer { get; init; }

    /// <summary>Input-channel step, if any.</summary>
    public InStep? In { get; init; }

    /// <summary>Kernel step, if any.</summary>
    public KernelStep? Kernel { get; init; }

    /// <summary>Out-channel decision followed, if any.</summary>
    public OutDecision? Out { get; init; }

    /// <summary>
    /// The program for this tensor: the transform chain from the source's values to the target's (computed in float32,
    /// or float64 for a float64 source, then cast to the target's dtype). Identity for copies, casts and kept tensors;
    /// a reinitialisation ignores its input. Checked against the target's shape when planned.
    /// </summary>
    public WeightTransform Transform { get; init; } = WeightTransform.Identity;

    /// <summary>
    /// The dtype <see cref="Transform"/> computes in: float64 for a float64 source, float32 otherwise (as timm's
    /// adapters); null when nothing is computed beyond a cast (copies, casts, kept tensors). The executor reads it.
    /// </summary>
    public DType? ComputeDType { get; init; }

    /// <summary>
    /// What computes the target: nothing for copies and kept tensors; managed twins when the source and target are
    /// floating-point dtypes twins hold (f16, bf16, f32, f64) and every step of <see cref="Transform"/> has a twin (a
    /// transfer needs no gradient); libtorch otherwise.
    /// </summary>
    public TargetEngine Engine => Status is TargetStatus.Copied or TargetStatus.Kept ? TargetEngine.Bytes
        : Source is not null && Twins.Holds(Source.DType) && Twins.Holds(Target.DType) && Transform.HasTwin ? TargetEngine.Managed
        : TargetEngine.LibTorch;

    /// <summary>Why the target is or is not carried over (<see cref="Reason"/> says it in a sentence).</summary>
    public TargetCause Cause { get; init; }

    /// <summary>
    /// What the target tensor is in its network (a conv weight, a BatchNorm's running variance, the head's bias …),
    /// assigned once before planning; the planner decides by it.
    /// </summary>
    public TensorRole Role { get; init; }

    /// <summary>The steps as reports list them: a cast for a cast, else each step of <see cref="Transform"/>.</summary>
    public IReadOnlyList<ReportStep> Steps => Status == TargetStatus.Cast
        ? [new ReportStep("cast", $"{Source!.DType}→{Target.DType}")]
        : Chain.StepsOf(Transform).Select(s => new ReportStep(s.Op, s.Describe())).ToList();

    /// <summary>
    /// True when every value of the target comes from the source (copies, casts, adaptations that add nothing but
    /// zeros on new inputs). What <c>--strict</c> requires.
    /// </summary>
    public bool Complete { get; init; }

    /// <summary>How the target was paired with a source (even when the source was then not used), or null.</summary>
    public NameMatch? Match { get; init; }

    /// <summary>A classifier head with another class count kept from the template (timm drops such heads).</summary>
    public bool NewHead { get; init; }

    /// <summary>
    /// A classifier head with another class count (or a member of its layer), whatever the policy did with it: kept
    /// from the template (<see cref="NewHead"/>) or its first classes kept. Such a head cannot keep the source's logits.
    /// </summary>
    public bool Head { get; init; }
}
