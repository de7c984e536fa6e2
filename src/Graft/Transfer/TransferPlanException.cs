using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>A caller asked for something a plan cannot do (a rule that does not fit a tensor, say).</summary>
public sealed class TransferPlanException(string message) : Exception(message);
