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
            // The report the transfer would give, without its output: one summary, verdict, table and JSON schema.
            var report = plan.Report(src, tpl);
            if (parse.GetValue(json))
            {
                CliJson.Write(ctx.Out, report);
            }
            else
            {
                ReportView.Render(ctx, report, parse.GetValue(all));
                ctx.Out.WriteLine("nothing was written (plan only).");
            }
            if (policy.Strict && plan.StrictViolations.Count > 0)
            {
                throw new TransferStrictException(plan.StrictViolations);
            }
            if (policyOptions.PreserveFunction(parse))
            {
                Graft.Growth.PreserveFunction.EnsureKept(plan);
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
