using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>Why a target does not simply come from its source; what the planner's control flow (and a caller's) tests.</summary>
public enum TargetCause
{
    /// <summary>The target comes from its source (copied, cast or adapted).</summary>
    Transferred,
    /// <summary>No source tensor was paired with the target.</summary>
    NoSource,
    /// <summary>A rule skips the tensor (or its layer).</summary>
    Skipped,
    /// <summary>A rule, or the kernel rule <c>reinit</c>, reinitialises the weight; <c>reinitialised</c> in JSON.</summary>
    [JsonStringEnumMemberName("reinitialised")]
    Reinitialized,
    /// <summary>A classifier head with another class count keeps the template's init.</summary>
    NewHead,
    /// <summary>Source and target differ in a way no transform carries (rank, a tensor without channel roles).</summary>
    Incompatible,
    /// <summary>The values cannot be computed on: a dtype TorchSharp cannot hold, and no bytes-only copy.</summary>
    NotComputable,
    /// <summary>The tensor's layer weight was not transferred, so the tensor keeps the template's value too.</summary>
    LayerNotTransferred,

    /// <summary>
    /// A buffer the new model computes for its own geometry (a relative position index for another window): the
    /// template's value is the right one, so keeping it is complete.
    /// </summary>
    TemplateBuffer,
}
