using Graft.Checkpoints.Transformers;

namespace Graft.Transformers;

/// <summary>
/// What a transfer planned by role (both checkpoints with a Llama-family <c>config.json</c>) adds to its
/// <see cref="Graft.Transfer.TransferPlan"/>: the two architectures, and every reason the plan does not keep the
/// source's function, worked out from the decisions themselves (group means, shrinking axes, a tied head widened),
/// which is what <c>--preserve-function</c> refuses.
/// </summary>
/// <param name="Source">The source's architecture.</param>
/// <param name="Target">The target's architecture.</param>
/// <param name="FunctionProblems">Why the function changes, one line each; empty when the plan keeps it.</param>
public sealed record TransformerPlan(TransformerConfig Source, TransformerConfig Target, IReadOnlyList<string> FunctionProblems);
