using System.Text.Json;
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
    /// <summary>What happened (<c>copied</c>, <c>cast</c>, <c>adapted</c>, <c>reinitialized</c> or <c>kept</c> in JSON).</summary>
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
}

/// <summary>A channel dependency group as used.</summary>
/// <param name="Key">Its key (producers joined by <c>+</c>).</param>
/// <param name="Producers">Layers sharing the out decision.</param>
/// <param name="Consumers">Layers following it on their inputs (<c>name×block</c> after a flatten).</param>
/// <param name="Origin"><c>declared</c> or <c>traced</c>.</param>
/// <param name="Decision">What was decided, for a person.</param>
public sealed record ReportGroup(string Key, IReadOnlyList<string> Producers, IReadOnlyList<string> Consumers, string Origin, string Decision);

/// <summary>What happened to one source tensor.</summary>
/// <param name="Name">Source tensor name.</param>
/// <param name="DType">Dtype.</param>
/// <param name="Shape">Shape.</param>
/// <param name="UsedBy">Target tensors made from it (empty: unused).</param>
public sealed record ReportSource(string Name, string DType, IReadOnlyList<long> Shape, IReadOnlyList<string> UsedBy);

/// <summary>What a transfer means for the target model, in the words a user acts on.</summary>
public enum TransferVerdict
{
    /// <summary>Every target tensor got its values from the source (copied, cast or adapted).</summary>
    Complete,
    /// <summary>
    /// Every target tensor came from the source except a classifier head with another class count, which keeps the
    /// template's init: the ordinary fine-tuning transfer, and what timm's <c>load_pretrained</c> does.
    /// </summary>
    CompleteApartFromNewHead,
    /// <summary>Some target tensors other than a new head were not carried over (kept, reinitialised or filled in part).</summary>
    Incomplete,
}

/// <summary>Counts by status, and the verdict.</summary>
/// <param name="Targets">Target tensors.</param>
/// <param name="Copied">Copied bit for bit.</param>
/// <param name="Cast">Cast to the target's dtype.</param>
/// <param name="Adapted">Transformed to the target's shape.</param>
/// <param name="Reinitialized">Freshly initialised.</param>
/// <param name="Kept">Kept from the template.</param>
/// <param name="UnusedSources">Source tensors nothing used.</param>
/// <param name="Complete">
/// The strict meaning: what <c>--strict</c> accepts (every value from the source, no cast, every source used; a new
/// head only under <see cref="TransferPolicy.StrictAllowsNewHead"/>). False for the ordinary transfer into a model with
/// another class count; <see cref="Verdict"/> says what that means for the model.
/// </param>
public sealed record ReportSummary(int Targets, int Copied, int Cast, int Adapted, int Reinitialized, int Kept, int UnusedSources, bool Complete)
{
    /// <summary>Target tensors of a classifier head with another class count that keep the template's init.</summary>
    public int NewHead { get; init; }

    /// <summary>Target tensors, other than a new head, whose values did not all come from the source.</summary>
    public int NotCarriedOver { get; init; }

    /// <summary>
    /// <see cref="TransferVerdict.Incomplete"/> when any tensor other than a new head was not carried over, otherwise
    /// <see cref="TransferVerdict.CompleteApartFromNewHead"/> when there is a new head, otherwise
    /// <see cref="TransferVerdict.Complete"/>. Unused source tensors do not change it (they are counted in
    /// <see cref="UnusedSources"/>, and <see cref="Complete"/> refuses them).
    /// </summary>
    public TransferVerdict Verdict =>
        NotCarriedOver > 0 ? TransferVerdict.Incomplete
        : NewHead > 0 ? TransferVerdict.CompleteApartFromNewHead
        : TransferVerdict.Complete;

    /// <summary>The verdict as a sentence for people (the CLI's summary line, the samples); not in the JSON.</summary>
    [JsonIgnore]
    public string VerdictText => Verdict switch
    {
        TransferVerdict.Complete => "complete: every target tensor carried over from the source",
        TransferVerdict.CompleteApartFromNewHead =>
            $"complete apart from a new head: every target tensor carried over except the classifier head ({NewHead} tensor{(NewHead == 1 ? "" : "s")}), which keeps its init",
        _ => $"incomplete: {NotCarriedOver} target tensor{(NotCarriedOver == 1 ? "" : "s")} not carried over"
            + (NewHead > 0 ? $" (besides a new head of {NewHead})" : ""),
    };
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
