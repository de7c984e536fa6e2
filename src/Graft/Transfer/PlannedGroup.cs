using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>A channel group as planned: who shares the decision, who follows, and what was decided.</summary>
/// <param name="Key">The group's key (producers joined by <c>+</c>).</param>
/// <param name="Producers">Producer layers.</param>
/// <param name="Consumers">Consumer layers (with block sizes after a flatten).</param>
/// <param name="Origin">Declared or traced.</param>
/// <param name="Decision">The shared decision, or null when the channel count does not change.</param>
public sealed record PlannedGroup(string Key, IReadOnlyList<string> Producers, IReadOnlyList<ChannelConsumer> Consumers, ChannelGroupOrigin Origin, OutDecision? Decision);
