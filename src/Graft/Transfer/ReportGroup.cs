using System.Text.Json;
using Graft.Checkpoints;
using System.Text.Json.Serialization;

namespace Graft.Transfer;

/// <summary>A channel dependency group as used.</summary>
/// <param name="Key">Its key (producers joined by <c>+</c>).</param>
/// <param name="Producers">Layers sharing the out decision.</param>
/// <param name="Consumers">Layers following it on their inputs (<c>name×block</c> after a flatten).</param>
/// <param name="Origin">Declared or traced (<c>declared</c>, <c>traced</c> in JSON).</param>
/// <param name="Decision">What was decided, for a person.</param>
public sealed record ReportGroup(string Key, IReadOnlyList<string> Producers, IReadOnlyList<string> Consumers, ChannelGroupOrigin Origin, string Decision);
