using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>The kernel step of a recipe.</summary>
/// <param name="Rule">The rule applied (never Reinit; that is a status).</param>
/// <param name="TargetSize">The target kernel size.</param>
public sealed record KernelStep(KernelRule Rule, IReadOnlyList<long> TargetSize);
