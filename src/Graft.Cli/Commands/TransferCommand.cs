using System.CommandLine;
using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Cli.Commands;

/// <summary>
/// <c>graft transfer SOURCE --into TEMPLATE --out OUT</c>: carries every weight that can be carried into the template's
/// architecture and reports what happened to every tensor.
/// </summary>
internal static class TransferCommand
{
    public static Command Create(CliContext ctx)
    {
        var source = new Argument<FileInfo>("source") { Description = "Pretrained checkpoint to take weights from." };
        var into = new Option<FileInfo>("--into") { Description = "Checkpoint of the target architecture; its values are the init for whatever is not transferred.", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "Where to write the result (format from the extension, or --format).", Required = true };
        var report = new Option<FileInfo?>("--report") { Description = "Also write the report as JSON to this file." };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON on standard output instead of a table." };
        var outFormat = new Option<string?>("--out-format", "--format") { Description = "Output format, when OUT's extension names none (an extension no format claims is refused otherwise)." };
        var shardSize = new Option<string?>("--shard-size") { Description = "Sharded output (.safetensors.index.json): most tensor bytes per shard, like 500MB or 2GiB (default 5GB)." };
        var all = new Option<bool>("--all") { Description = "List every tensor in the table, also those copied unchanged (the JSON report always has every tensor)." };
        var checkLogits = new Option<string?>("--check-logits")
        {
            Description = "Decoders planned by role (config.json): auto | always | never (default auto: when the plan claims the function is kept and both models " +
                $"have at most {Graft.Transformers.LogitCheck.MaxParameters / 1_000_000} M parameters, compare the source's and the output's logits in float64 and fail, exit 5, writing nothing, if they differ).",
        };
        var cmd = new Command("transfer", "Transfer weights from SOURCE into the architecture of TEMPLATE, writing OUT and a report.")
        {
            source, into, output, report, json, outFormat, all, shardSize, checkLogits,
        };
        var policyOptions = new PolicyOptions();
        policyOptions.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            var policy = policyOptions.Read(parse);
            var src = parse.GetValue(source)!.FullName;
            var tpl = parse.GetValue(into)!.FullName;
            var outPath = parse.GetValue(output)!.FullName;
            var reportPath = parse.GetValue(report)?.FullName;
            long? maxShard = parse.GetValue(shardSize) is { } size ? ByteSize.Parse(size, "--shard-size") : null;
            var logitCheck = parse.GetValue(checkLogits) is { } mode ? PolicyWords.Parse<Graft.Transformers.LogitCheckMode>(mode, "--check-logits") : Graft.Transformers.LogitCheckMode.Auto;
            // OUT (with its shards or data file) and the report are one output set: checked against every file the source
            // and template read before anything is written, staged, and renamed into place together at the end, or not
            // at all (a report that cannot be written leaves no new OUT).
            TransferReport result;
            using (var outputs = new OutputSet())
            {
                if (reportPath is not null)
                {
                    outputs.AddOutput(reportPath, "report");
                }
                result = ProgressView.Run(ctx, "transfer", report => Graft.Transfer.WeightTransfer.Files(src, tpl, outPath, policy,
                    report is null ? null : new Reporter(report), parse.GetValue(outFormat),
                    refuse: policyOptions.PreserveFunction(parse) ? KeepsFunction : null, maxShardBytes: maxShard, logitCheck: logitCheck));
                if (reportPath is not null)
                {
                    AtomicFile.Write(reportPath, stream => System.Text.Json.JsonSerializer.Serialize(stream, result, CliJson.Options));
                }
                outputs.Commit();
            }
            if (parse.GetValue(json))
            {
                CliJson.Write(ctx.Out, result);
            }
            else
            {
                ReportView.Render(ctx, result, parse.GetValue(all));
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>Throws, with <c>--preserve-function</c>'s own message, when the plan cannot keep the function.</summary>
    private static IReadOnlyList<string> KeepsFunction(TransferPlan plan)
    {
        Graft.Growth.PreserveFunction.EnsureKept(plan);
        return [];
    }

    private sealed class Reporter(Action<int, int, string> report) : IProgress<TransferProgress>
    {
        public void Report(TransferProgress value) => report(value.Done, value.Total, value.Current);
    }
}

/// <summary>Renders a report as a table for people: <c>graft transfer</c> and <c>graft plan</c> print the same one.</summary>
internal static class ReportView
{
    /// <summary>
    /// The table lists what needed a decision (adapted, cast, reinitialised, kept, renamed or guessed pairs), with the
    /// reason in words; tensors copied unchanged under their own name are counted on one line unless
    /// <paramref name="all"/> asks for every row. On a large model they are most rows and say nothing, and rendering
    /// them costs more than the transfer. Then the counts, and the line starting with <c>Verdict:</c>.
    /// </summary>
    public static void Render(CliContext ctx, TransferReport r, bool all = false)
    {
        TextTable.Write(ctx, Columns, () => r.Targets.Where(t => all || !IsPlainCopy(t)).Select(t =>
        {
            var shape = t.SourceShape is null ? $"— → {new Shape(t.Shape)}"
                : t.SourceShape.SequenceEqual(t.Shape) && t.SourceDType == t.DType ? new Shape(t.Shape).ToString()
                : t.SourceDType == t.DType ? $"{new Shape(t.SourceShape)} → {new Shape(t.Shape)}"
                : $"{new Shape(t.SourceShape)} {t.SourceDType} → {new Shape(t.Shape)} {t.DType}";
            var from = t.Source is null || t.Source == t.Name ? "" : $" (from {t.Source})";
            var reason = t.Reason + (t.ChannelIndices is null ? ""
                : $" [{string.Join(",", t.ChannelIndices.Take(8))}{(t.ChannelIndices.Count > 8 ? ",…" : "")}]");
            return new TextCell[] { t.Name + from, new(PolicyWords.Word(t.Status) + CauseSuffix(t.Cause), StatusColour(t.Status)), shape, reason };
        }));
        int plain = all ? 0 : r.Targets.Count(IsPlainCopy);
        if (plain > 0)
        {
            ctx.Out.WriteLine($"{plain} tensors copied unchanged, matched by name (--all lists them).");
        }
        var s = r.Summary;
        var adapted = s.Grown + s.Shrunk > 0 ? $"{s.Adapted} adapted ({s.Grown} grown, {s.Shrunk} shrunk)" : $"{s.Adapted} adapted";
        ctx.Out.WriteLine($"{s.Targets} target tensors: {s.Copied} copied, {s.Cast} cast, {adapted}, {s.Reinitialized} reinitialised, {s.Kept} kept from the template; {s.UnusedSources} source tensors unused.");
        ctx.Out.WriteLine($"Verdict: {TerminalText.Escape(s.VerdictText)}.");
        foreach (var u in r.Sources.Where(x => x.UsedBy.Count == 0))
        {
            ctx.Out.WriteLine($"  unused source: {TerminalText.Escape(u.Name)} {new Shape(u.Shape)}");
        }
        foreach (var n in r.Notes)
        {
            ctx.Out.WriteLine($"  note: {TerminalText.Escape(n)}");
        }
        if (r.Logits is { } logits)
        {
            ctx.Out.WriteLine($"Logits: {TerminalText.Escape(logits.Describe())}.");
        }
        if (r.Output is not null)
        {
            ctx.Out.WriteLine($"wrote {TerminalText.Escape(r.Output.Path)} ({r.Output.Format})");
        }
    }

    private static readonly TextTableColumn[] Columns =
        [new("target"), new("status"), new("shape"), new("reason")];

    /// <summary>Copied as is, found by its own name (or that name under a common prefix such as <c>module.</c>).</summary>
    private static bool IsPlainCopy(ReportTarget t) => IsPlainCopy(t.Status, t.Match);

    /// <summary>
    /// What the transfer and plan tables count on one line instead of listing (unless <c>--all</c>): a tensor copied as
    /// is under its own name or that name under a wrapper prefix.
    /// </summary>
    internal static bool IsPlainCopy(TargetStatus status, MatchKind? match) => status == TargetStatus.Copied && match is MatchKind.Exact or MatchKind.Prefix;

    /// <summary>
    /// The typed cause beside the status of a target not carried over (<c>kept (new-head)</c>), as the JSON spells it:
    /// what a script greps for; nothing when the status says it all (carried over, or reinitialised on request).
    /// </summary>
    internal static string CauseSuffix(TargetCause? cause) => cause is null or TargetCause.Reinitialized ? ""
        : $" ({PolicyWords.Word(cause.Value)})";

    /// <summary>The colour of a status (ANSI SGR), shared by the transfer and plan tables.</summary>
    internal static string StatusColour(TargetStatus status) => status switch
    {
        TargetStatus.Copied => "32",
        TargetStatus.Cast => "33",
        TargetStatus.Adapted => "36",
        TargetStatus.Reinitialized => "35",
        _ => "90",
    };
}
