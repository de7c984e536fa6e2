using System.Text.Json;
using Graft.Checkpoints;
using System.Text.Json.Serialization;

namespace Graft.Transfer;

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
