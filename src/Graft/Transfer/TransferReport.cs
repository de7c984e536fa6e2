using System.Text.Json;
using Graft.Checkpoints;
using System.Text.Json.Serialization;

namespace Graft.Transfer;

/// <summary>One step applied to a tensor.</summary>
/// <param name="Op">Machine name (<c>in.repeat-rescale</c>, <c>kernel.fit</c>, <c>out.truncate</c> …).</param>
/// <param name="Detail">What it did, for a person.</param>
public sealed record ReportStep(string Op, string Detail);

/// <summary>A file (or module) taking part in a transfer.</summary>
/// <param name="Path">Path, or a module name in angle brackets.</param>
/// <param name="Format">Format name.</param>
/// <param name="Tensors">Number of tensors.</param>
public sealed record ReportFile(string Path, string Format, int Tensors);

/// <summary>What happened to one target tensor.</summary>
public sealed record ReportTarget
{
    /// <summary>Target tensor name.</summary>
    public required string Name { get; init; }
    /// <summary>Target dtype (safetensors spelling).</summary>
    public required string DType { get; init; }
    /// <summary>Target shape.</summary>
    public required IReadOnlyList<long> Shape { get; init; }
    /// <summary>What happened (<c>copied</c>, <c>cast</c>, <c>adapted</c>, <c>reinitialised</c> or <c>kept</c> in JSON).</summary>
    public required TargetStatus Status { get; init; }
    /// <summary>Source tensor used, or null.</summary>
    public string? Source { get; init; }
    /// <summary>Source dtype, or null.</summary>
    public string? SourceDType { get; init; }
    /// <summary>Source shape, or null.</summary>
    public IReadOnlyList<long>? SourceShape { get; init; }
    /// <summary>The layer (name prefix).</summary>
    public required string Layer { get; init; }
    /// <summary>The layout the tensor was read with (<c>Conv2d</c>, <c>Linear</c>, <c>Vector</c> …).</summary>
    public required string Layout { get; init; }
    /// <summary>Why this status.</summary>
    public required string Reason { get; init; }
    /// <summary>Transforms applied, in order (empty unless adapted or reinitialised).</summary>
    public IReadOnlyList<ReportStep> Steps { get; init; } = [];
    /// <summary>For a selection other than first-n: the source channel of each target channel (-1 = new).</summary>
    public IReadOnlyList<long>? ChannelIndices { get; init; }
    /// <summary>True when every value comes from the source (what <c>--strict</c> requires).</summary>
    public required bool Complete { get; init; }
    /// <summary>How the source was found: <c>exact</c>, <c>prefix</c>, <c>rename</c> or <c>structural</c> (a guess); null when none was.</summary>
    public MatchKind? Match { get; init; }
    /// <summary>The rule or signature behind <see cref="Match"/>.</summary>
    public string? MatchReason { get; init; }
    /// <summary>The channel group whose decision this tensor applies or follows, if any.</summary>
    public string? Group { get; init; }
    /// <summary>The planned input-channel step, if any.</summary>
    public InStep? In { get; init; }
    /// <summary>The planned kernel step, if any.</summary>
    public KernelStep? Kernel { get; init; }
    /// <summary>The out-channel decision applied or followed, if any.</summary>
    public OutDecision? Out { get; init; }
}

/// <summary>A channel dependency group as used.</summary>
/// <param name="Key">Its key (producers joined by <c>+</c>).</param>
/// <param name="Producers">Layers sharing the out decision.</param>
/// <param name="Consumers">Layers following it on their inputs (<c>name×block</c> after a flatten).</param>
/// <param name="Origin">Declared or traced (<c>declared</c>, <c>traced</c> in JSON).</param>
/// <param name="Decision">What was decided, for a person.</param>
public sealed record ReportGroup(string Key, IReadOnlyList<string> Producers, IReadOnlyList<string> Consumers, ChannelGroupOrigin Origin, string Decision);

/// <summary>What happened to one source tensor.</summary>
/// <param name="Name">Source tensor name.</param>
/// <param name="DType">Dtype.</param>
/// <param name="Shape">Shape.</param>
/// <param name="UsedBy">Target tensors made from it (empty: unused).</param>
public sealed record ReportSource(string Name, string DType, IReadOnlyList<long> Shape, IReadOnlyList<string> UsedBy);

/// <summary>What a transfer means for the target model, in the words a user acts on.</summary>
public enum TransferVerdict
{
    /// <summary>Every target tensor got its values from the source (copied, cast or adapted) and no source value was left behind.</summary>
    Complete,
    /// <summary>
    /// Every target tensor came from the source except a classifier head with another class count, which keeps the
    /// template's init: the ordinary fine-tuning transfer, and what timm's <c>load_pretrained</c> does.
    /// </summary>
    CompleteApartFromNewHead,
    /// <summary>
    /// Every target tensor came from the source except those a rule reinitialised or skipped (<c>--reinit</c>,
    /// <c>--skip</c>), and perhaps a new head: what was asked for.
    /// </summary>
    CompleteApartFromRequested,
    /// <summary>
    /// Every source value was carried over into a larger network: some tensors gained channels, inputs or kernel taps
    /// from init or zeros. <see cref="ReportSummary.GrowthKeepsFunction"/> says whether the source's function is kept.
    /// </summary>
    Grown,
    /// <summary>Every target tensor was carried over, but part of the source's values were left behind (a narrower network, unused tensors).</summary>
    Partial,
    /// <summary>Some target tensors other than a new head were not carried over, and no rule asked for that.</summary>
    Incomplete,
}

/// <summary>Counts by status and by what happened to the source's values, and the verdict.</summary>
/// <param name="Targets">Target tensors.</param>
/// <param name="Copied">Copied bit for bit.</param>
/// <param name="Cast">Cast to the target's dtype.</param>
/// <param name="Adapted">Transformed to the target's shape.</param>
/// <param name="Reinitialized">Freshly initialised (JSON <c>reinitialised</c>).</param>
/// <param name="Kept">Kept from the template.</param>
/// <param name="UnusedSources">Source tensors nothing used.</param>
/// <param name="Complete">
/// The strict meaning: what <c>--strict</c> accepts (every value from the source, no cast, every source used; a new
/// head only under <see cref="TransferPolicy.StrictAllowsNewHead"/>). False for the ordinary transfer into a model with
/// another class count; <see cref="Verdict"/> says what that means for the model.
/// </param>
public sealed record ReportSummary(int Targets, int Copied, int Cast, int Adapted,
    [property: JsonPropertyName("reinitialised")] int Reinitialized, int Kept, int UnusedSources, bool Complete)
{
    /// <summary>Adapted tensors that use every source value and add values from init or zeros (new channels, inputs, kernel taps).</summary>
    public int Grown { get; init; }

    /// <summary>Adapted tensors that leave part of their source's values behind (fewer channels or inputs, a cropped kernel).</summary>
    public int Shrunk { get; init; }

    /// <summary>Target tensors reinitialised or skipped because a rule asked for it (and the other members of their layers).</summary>
    public int OnRequest { get; init; }

    /// <summary>Target tensors of a classifier head with another class count that keep the template's init.</summary>
    public int NewHead { get; init; }

    /// <summary>Target tensors not carried over although no rule asked for it (no source, incompatible, not computable).</summary>
    public int NotCarriedOver { get; init; }

    /// <summary>Values (elements) in the source's tensors.</summary>
    public long SourceValues { get; init; }

    /// <summary>
    /// Source values no target is made from: dropped channels, inputs and kernel taps, unused tensors (not the old head's,
    /// nor those of layers a rule reinitialised or skipped).
    /// </summary>
    public long SourceValuesLeftBehind { get; init; }

    /// <summary>Values of the source's classifier head that a new head leaves behind.</summary>
    public long HeadValuesLeftBehind { get; init; }

    /// <summary>
    /// When tensors grew: true when the new channels are silent (every layer reading them gives them zero weights, and no
    /// LayerNorm, RMSNorm or attention sees them), so the growth keeps the source's function; null when nothing grew.
    /// </summary>
    public bool? GrowthKeepsFunction { get; init; }

    /// <summary>The first reason the growth changes the function, when it does.</summary>
    public string? GrowthChangesFunctionBecause { get; init; }

    /// <summary>
    /// <see cref="TransferVerdict.Incomplete"/> when a target other than a new head was not carried over and no rule asked
    /// for it; else <see cref="TransferVerdict.Partial"/> when source values were left behind; else
    /// <see cref="TransferVerdict.Grown"/> when tensors grew; else complete, apart from what a rule asked for and a new head.
    /// </summary>
    public TransferVerdict Verdict =>
        NotCarriedOver > 0 ? TransferVerdict.Incomplete
        : SourceValuesLeftBehind > 0 ? TransferVerdict.Partial
        : Grown > 0 ? TransferVerdict.Grown
        : OnRequest > 0 ? TransferVerdict.CompleteApartFromRequested
        : NewHead > 0 ? TransferVerdict.CompleteApartFromNewHead
        : TransferVerdict.Complete;

    /// <summary>
    /// The verdict as a sentence for people: what happened to the source's values and to its function. <c>plan</c> and
    /// <c>transfer</c> print it after <c>Verdict:</c>; the JSON carries it as <c>verdictText</c>.
    /// </summary>
    public string VerdictText
    {
        get
        {
            string head = $"the classifier head ({NewHead} tensor{(NewHead == 1 ? "" : "s")}) keeps its init";
            string headline = Verdict switch
            {
                TransferVerdict.Complete => "complete: every target tensor carried over from the source",
                TransferVerdict.CompleteApartFromNewHead =>
                    $"complete apart from a new head: every target tensor carried over except the classifier head ({NewHead} tensor{(NewHead == 1 ? "" : "s")}), which keeps its init",
                TransferVerdict.CompleteApartFromRequested =>
                    $"complete apart from what you asked to reinitialise or skip: every other target tensor carried over from the source ({Tensors(OnRequest)} reinitialised or skipped on request)",
                TransferVerdict.Grown => GrowthKeepsFunction == true
                    ? $"grown, function kept: every source value carried over; {Tensors(Grown)} gained channels, inputs or kernel taps from init or zeros, silent to the layers that read them"
                    : $"grown, function changed: every source value carried over; {Tensors(Grown)} gained channels, inputs or kernel taps, and {GrowthChangesFunctionBecause}",
                TransferVerdict.Partial => $"partial: {LeftBehindPhrase} left behind",
                _ => $"incomplete: {Tensors(NotCarriedOver)} not carried over",
            };
            var more = new List<string>();
            if (Verdict == TransferVerdict.Incomplete && SourceValuesLeftBehind > 0)
            {
                more.Add($"{LeftBehindPhrase} left behind");
            }
            if (Verdict is TransferVerdict.Incomplete or TransferVerdict.Partial && Grown > 0)
            {
                more.Add($"{Tensors(Grown)} grown" + (GrowthKeepsFunction == true ? " (new channels silent)" : $" ({GrowthChangesFunctionBecause})"));
            }
            if (Verdict is TransferVerdict.Incomplete or TransferVerdict.Partial or TransferVerdict.Grown && OnRequest > 0)
            {
                more.Add($"{Tensors(OnRequest)} reinitialised or skipped on request");
            }
            if (Verdict != TransferVerdict.CompleteApartFromNewHead && NewHead > 0)
            {
                more.Add($"a new head: {head}");
            }
            return more.Count == 0 ? headline : headline + "; " + string.Join("; ", more);
        }
    }

    private string LeftBehindPhrase => $"{Percent(SourceValuesLeftBehind, SourceValues)} of the source's values ({Count(SourceValuesLeftBehind)} of {Count(SourceValues)})";

    private static string Tensors(int n) => n == 1 ? "1 target tensor" : $"{n} target tensors";

    /// <summary>A share as people read it: "51 %", "0.4 %", never "0 %" for something.</summary>
    internal static string Percent(long part, long whole)
    {
        double p = whole == 0 ? 0 : 100.0 * part / whole;
        return p >= 10 ? FormattableString.Invariant($"{p:0} %")
            : p >= 0.1 ? FormattableString.Invariant($"{p:0.#} %")
            : p > 0 ? "under 0.1 %" : "0 %";
    }

    /// <summary>A count of values: 9,408 · 13.2 M · 1.1 G.</summary>
    internal static string Count(long n) =>
        n >= 1_000_000_000 ? FormattableString.Invariant($"{n / 1e9:0.0} G")
        : n >= 1_000_000 ? FormattableString.Invariant($"{n / 1e6:0.0} M")
        : n.ToString("N0", System.Globalization.CultureInfo.InvariantCulture);
}

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
        for (int t = 0; t < of.Length; t++)
        {
            of[t] = plan.Targets[t].Source is { } s && index.TryGetValue(s.Name, out var i) ? i : -1;
            if (of[t] >= 0)
            {
                start[of[t] + 1]++;
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
