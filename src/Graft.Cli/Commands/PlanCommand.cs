using System.CommandLine;
using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Cli.Commands;

/// <summary>
/// <c>graft plan SOURCE --into TEMPLATE</c>: the full plan of a transfer as a table, before anything is written. Reads
/// headers only (no tensor data), takes the same policy options as <c>graft transfer</c>, and writes no file.
/// </summary>
internal static class PlanCommand
{
    public static Command Create(CliContext ctx)
    {
        var source = new Argument<FileInfo>("source") { Description = "Pretrained checkpoint to take weights from." };
        var into = new Option<FileInfo>("--into") { Description = "Checkpoint of the target architecture.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the plan as JSON on standard output instead of a table." };
        var all = new Option<bool>("--all") { Description = "List every tensor in the table, also those copied unchanged (the JSON always has every tensor)." };
        var cmd = new Command("plan", "Show what 'graft transfer' would do to every tensor, without reading tensor data or writing anything. With --strict, exit 5 when the transfer would be refused.")
        {
            source, into, json, all,
        };
        var policyOptions = new PolicyOptions();
        policyOptions.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            var policy = policyOptions.Read(parse);
            using var src = CheckpointFile.Open(parse.GetValue(source)!.FullName);
            using var tpl = CheckpointFile.Open(parse.GetValue(into)!.FullName);
            var plan = Graft.Transfer.WeightTransfer.Plan(src, tpl, policy);
            if (parse.GetValue(json))
            {
                CliJson.Write(ctx.Out, plan.WriteJson);
            }
            else
            {
                Render(ctx, plan, parse.GetValue(all));
            }
            if (policy.Strict && plan.StrictViolations.Count > 0)
            {
                throw new TransferStrictException(plan.StrictViolations);
            }
            if (policyOptions.PreserveFunction(parse) && Graft.Growth.PreserveFunction.Problems(plan) is { Count: > 0 } problems)
            {
                throw new TransferStrictException(problems);
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static readonly TextTableColumn[] Columns =
        [new("target"), new("status", Colour: ReportView.StatusColour), new("source → target"), new("reason")];

    /// <summary>
    /// Like the transfer's table: what needs a decision is listed, tensors copied unchanged under their own name are
    /// counted on one line unless <paramref name="all"/> asks for every row.
    /// </summary>
    private static void Render(CliContext ctx, TransferPlan plan, bool all)
    {
        static bool Plain(TargetPlan t) => ReportView.IsPlainCopy(t.Status, t.Match?.Kind);
        TextTable.Write(ctx, Columns, () => plan.Targets.Where(t => all || !Plain(t)).Select(t =>
        {
            string shape = t.Source is null ? $"— → {t.Target.Shape}"
                : t.Source.Shape == t.Target.Shape && t.Source.DType == t.Target.DType ? t.Target.Shape.ToString()
                : t.Source.DType == t.Target.DType ? $"{t.Source.Shape} → {t.Target.Shape}"
                : $"{t.Source.Shape} {t.Source.DType.SafetensorsName()} → {t.Target.Shape} {t.Target.DType.SafetensorsName()}";
            string from = t.Source is null || t.Source.Name == t.Target.Name ? "" : $" (from {t.Source.Name})";
            return new[] { t.Target.Name + from, ReportView.Word(t.Status), shape, t.Reason };
        }));
        int plain = all ? 0 : plan.Targets.Count(Plain);
        if (plain > 0)
        {
            ctx.Out.WriteLine($"{plain} tensors copied unchanged, matched by name (--all lists them).");
        }
        var s = plan.Summary;
        ctx.Out.WriteLine($"plan for {s.Targets} target tensors: {s.Copied} copied, {s.Cast} cast, {s.Adapted} adapted, {s.Reinitialized} reinitialised, {s.Kept} kept from the template; {s.UnusedSources} source tensors unused.");
        foreach (var u in plan.UnusedSources)
        {
            ctx.Out.WriteLine($"  unused source: {TerminalText.Escape(u.Name)} {u.Shape}");
        }
        foreach (var n in plan.Notes)
        {
            ctx.Out.WriteLine($"  note: {TerminalText.Escape(n)}");
        }
        ctx.Out.WriteLine(s.Complete ? "complete: --strict would accept this transfer." : $"not complete: --strict would refuse it ({plan.StrictViolations.Count} tensor(s)).");
        ctx.Out.WriteLine("nothing was written (plan only).");
    }
}
