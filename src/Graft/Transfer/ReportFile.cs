using System.Text.Json;
using Graft.Checkpoints;
using System.Text.Json.Serialization;

namespace Graft.Transfer;

/// <summary>A file (or module) taking part in a transfer.</summary>
/// <param name="Path">Path, or a module name in angle brackets.</param>
/// <param name="Format">Format name.</param>
/// <param name="Tensors">Number of tensors.</param>
public sealed record ReportFile(string Path, string Format, int Tensors);
