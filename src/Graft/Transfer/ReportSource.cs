using System.Text.Json;
using Graft.Checkpoints;
using System.Text.Json.Serialization;

namespace Graft.Transfer;

/// <summary>What happened to one source tensor.</summary>
/// <param name="Name">Source tensor name.</param>
/// <param name="DType">Dtype.</param>
/// <param name="Shape">Shape.</param>
/// <param name="UsedBy">Target tensors made from it (empty: unused).</param>
public sealed record ReportSource(string Name, string DType, IReadOnlyList<long> Shape, IReadOnlyList<string> UsedBy);
