using System.Text.Json;
using Graft.Checkpoints;
using System.Text.Json.Serialization;

namespace Graft.Transfer;

/// <summary>
/// Every tensor accounted for: each target (what happened and why) and each source (used by what, or unused).
/// Serialises to the JSON documented in the README.
/// </summary>
public sealed record TransferReport
{
    /// <summary>Graft version that wrote the report.</summary>
    public string Graft { get; init; } = typeof(TransferReport).Assembly.GetName().Version?.ToString(3) ?? "0";
    /// <summary>The source checkpoint.</summary>
    public required ReportFile Source { get; init; }
    /// <summary>The template checkpoint (target architecture and init).</summary>
    public required ReportFile Template { get; init; }
    /// <summary>The output, when one was written.</summary>
    public ReportFile? Output { get; init; }
    /// <summary>The policy used.</summary>
    public required TransferPolicy Policy { get; init; }
    /// <summary>Counts.</summary>
    public required ReportSummary Summary { get; init; }
    /// <summary>
    /// One entry per target tensor, in template order. A transfer's report makes each entry from its plan when it is
    /// read: equal in value every time, not the same object.
    /// </summary>
    public required IReadOnlyList<ReportTarget> Targets { get; init; }
    /// <summary>One entry per source tensor, in source order (made when read, like <see cref="Targets"/>).</summary>
    public required IReadOnlyList<ReportSource> Sources { get; init; }
    /// <summary>Channel dependency groups used (declared or traced).</summary>
    public IReadOnlyList<ReportGroup> Groups { get; init; } = [];
    /// <summary>Plan-wide notes: largest-norm decisions that fell back to first-n and why; structural guesses.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
    /// <summary>What <c>--strict</c> refuses, one line each (empty when it accepts the transfer).</summary>
    public IReadOnlyList<string> StrictViolations { get; init; } = [];
    /// <summary>
    /// For a decoder planned by role and written to files: the source's and the output's logits compared
    /// (<see cref="Graft.Transformers.LogitCheck"/>), or why they were not; null otherwise.
    /// </summary>
    public Graft.Transformers.LogitCheckResult? Logits { get; init; }

    /// <summary>
    /// The report of <paramref name="plan"/>: every entry made from the plan when read, so a report of many tensors
    /// costs little more than the plan. <paramref name="measured"/> gives the channel maps a run measured (largest-norm
    /// selections); a plan's report has none, and no output.
    /// </summary>
    internal static TransferReport FromPlan(TransferPlan plan, ICheckpointReader source, ICheckpointReader template, ReportFile? output,
        Func<OutDecision, Transforms.ChannelMap?>? measured)
    {
        var sourceTensors = source.Tensors;
        var usedBy = UsedBy(plan, sourceTensors);
        return new TransferReport
        {
            Source = new ReportFile(source.Path, source.Format, sourceTensors.Count),
            Template = new ReportFile(template.Path, template.Format, template.Tensors.Count),
            Output = output,
            Policy = plan.Policy,
            Summary = plan.Summary,
            Targets = ComputedList.Select(plan.Targets, t => new ReportTarget
            {
                Name = t.Target.Name,
                DType = t.Target.DType.SafetensorsName(),
                Shape = t.Target.Shape,
                Status = t.Status,
                Source = t.Source?.Name,
                SourceDType = t.Source?.DType.SafetensorsName(),
                SourceShape = t.Source?.Shape,
                Layer = t.Layer,
                Layout = t.Layout.ToString(),
                Reason = t.Reason,
                Steps = t.Steps,
                ChannelIndices = measured is not null && t.Out is { MapKind: Transforms.ChannelMapKind.LargestL1 or Transforms.ChannelMapKind.LargestL2 } d && t.Status == TargetStatus.Adapted
                    ? measured(d)?.ToArray() : null,
                Complete = t.Complete,
                Match = t.Match?.Kind,
                MatchReason = t.Match?.Why,
                Group = t.Out?.DependencyGroup ?? t.In?.Follows?.DependencyGroup,
                In = t.In,
                Kernel = t.Kernel,
                Out = t.Out,
                Role = t.Role,
                Cause = t.Cause == TargetCause.Transferred ? null : t.Cause,
            }),
            Sources = new ComputedList<ReportSource>(sourceTensors.Count, i =>
            {
                var s = sourceTensors[i];
                var users = new string[usedBy.Start[i + 1] - usedBy.Start[i]];
                for (int k = 0; k < users.Length; k++)
                {
                    users[k] = plan.Targets[usedBy.Targets[usedBy.Start[i] + k]].Target.Name;
                }
                return new ReportSource(s.Name, s.DType.SafetensorsName(), s.Shape, users);
            }),
            Groups = plan.Groups.Select(g => new ReportGroup(g.Key, g.Producers, g.Consumers.Select(c => c.ToString()).ToList(), g.Origin,
                g.Decision is null ? "unchanged" : $"{g.Decision.SourceCount}→{g.Decision.TargetCount}: {RuleSteps.Describe(g.Decision)}")).ToList(),
            Notes = plan.Notes,
            StrictViolations = plan.StrictViolations,
        };
    }

    /// <summary>
    /// Which targets each source tensor made, as two arrays (the targets of source <c>i</c> are
    /// <c>Targets[Start[i]..Start[i+1]]</c>, in template order): eight bytes a pair, where a lookup of names cost a
    /// hundred.
    /// </summary>
    private static (int[] Start, int[] Targets) UsedBy(TransferPlan plan, IReadOnlyList<TensorInfo> sources)
    {
        var index = new Dictionary<string, int>(sources.Count, StringComparer.Ordinal);
        for (int i = 0; i < sources.Count; i++)
        {
            index.TryAdd(sources[i].Name, i);
        }
        var of = new int[plan.Targets.Count];
        var start = new int[sources.Count + 1];
        // A fused projection built from stacked unfused tensors (Transformers.JoinedSource) uses each of them too.
        List<(int Target, int Source)>? parts = null;
        for (int t = 0; t < of.Length; t++)
        {
            of[t] = plan.Targets[t].Source is { } s && index.TryGetValue(s.Name, out var i) ? i : -1;
            if (of[t] >= 0)
            {
                start[of[t] + 1]++;
            }
            if (plan.Targets[t].Source is { } stacked && global::Graft.Transformers.JoinedSource.PartNames(stacked.Name) is { } names)
            {
                foreach (var n in names)
                {
                    if (index.TryGetValue(n, out var p))
                    {
                        (parts ??= []).Add((t, p));
                        start[p + 1]++;
                    }
                }
            }
        }
        for (int i = 0; i < sources.Count; i++)
        {
            start[i + 1] += start[i];
        }
        var targets = new int[start[sources.Count]];
        var next = start[..^1];
        for (int t = 0; t < of.Length; t++)
        {
            if (of[t] >= 0)
            {
                targets[next[of[t]]++] = t;
            }
        }
        foreach (var (t, p) in parts ?? [])
        {
            targets[next[p]++] = t;
        }
        return (start, targets);
    }

    /// <summary>Options used for the report's JSON: camelCase, enums as kebab-case strings, indented.</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // Output for files and terminals, not HTML: keep →, × and ' readable.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower), new LayoutJsonConverter() },
    };

    /// <summary>The report as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>
    /// <see cref="ToJson"/> written to <paramref name="utf8Json"/> as it is made, entry by entry, never as one string (the
    /// report of 200,000 tensors is over 100 MB of text).
    /// </summary>
    public void WriteJson(Stream utf8Json) => JsonSerializer.Serialize(utf8Json, this, JsonOptions);

    private sealed class LayoutJsonConverter : JsonConverter<Layout>
    {
        public override Layout Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            throw new NotSupportedException("Layouts are written, not read.");

        public override void Write(Utf8JsonWriter writer, Layout value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
    }
}
