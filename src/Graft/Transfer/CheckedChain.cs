using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>
/// The planner's last stage: a plan entry gets its transform chain only after the chain is checked to take the source's
/// shape (nothing, for a reinitialisation) to the target's. A chain that cannot be built or does not fit is a planned
/// refusal, never a failure while writing.
/// </summary>
internal static class CheckedChain
{
    /// <summary>Gives <paramref name="plan"/> the chain of <paramref name="steps"/>, or refuses it when the chain does not fit.</summary>
    public static TargetPlan Attach(TargetPlan plan, Func<IEnumerable<WeightTransform>> steps)
    {
        var input = plan.Source?.Shape ?? new Shape(0);
        try
        {
            var chain = Chain.Of(steps());
            var output = chain.OutputShape(input);
            return output == plan.Target.Shape
                ? plan with { Transform = chain, ComputeDType = plan.Source?.DType == DType.F64 ? DType.F64 : DType.F32 }
                : Refused(plan, TargetCause.Incompatible, $"the planned steps ({chain.Op}) give {output}, but the target is {plan.Target.Shape}");
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            return Refused(plan, TargetCause.Incompatible, $"no planned step takes {input} to {plan.Target.Shape}: {e.Message}");
        }
    }

    /// <summary>The template's value is kept: nothing of the source is used, and <c>--strict</c> refuses it.</summary>
    public static TargetPlan Refused(TargetPlan plan, TargetCause cause, string reason) => plan with
    {
        Status = TargetStatus.Kept, Source = null, Cause = cause, Reason = reason, Complete = false,
        In = null, Kernel = null, Out = null, Transform = WeightTransform.Identity, ComputeDType = null,
    };

    /// <summary>True when TorchSharp can hold <paramref name="dtype"/>, so values of it can be computed on.</summary>
    public static bool Computable(DType dtype) => TensorBridge.ToScalarType(dtype) is not null;

    /// <summary>The refusal of a tensor whose shape changes but whose dtypes cannot be computed on, or null when they can.</summary>
    public static TargetPlan? RefuseUncomputable(TargetPlan plan, TensorInfo source, TensorInfo target) =>
        !target.DType.IsFloatingPoint() || !Computable(source.DType) || !Computable(target.DType)
            ? Refused(plan, TargetCause.NotComputable, $"shapes differ and dtype {source.DType}→{target.DType} cannot be computed on")
            : null;
}
