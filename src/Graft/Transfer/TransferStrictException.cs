using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>
/// Strict mode found tensors that are not fully transferred, or a promise such as <c>--preserve-function</c> cannot be
/// kept; nothing was written.
/// </summary>
/// <param name="violations">One line per problem.</param>
/// <param name="headline">What was refused, for the message (default: <c>--strict</c>'s).</param>
public sealed class TransferStrictException(IReadOnlyList<string> violations, string? headline = null)
    : Exception((headline ?? $"--strict: {violations.Count} tensor(s) not fully transferred") + ": " + string.Join("; ", violations.Take(10)) + (violations.Count > 10 ? "; …" : ""))
{
    /// <summary>Each violation, one line.</summary>
    public IReadOnlyList<string> Violations { get; } = violations;
}
