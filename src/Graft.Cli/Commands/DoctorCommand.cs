using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Graft.Numerics;
using Graft.Transfer;

namespace Graft.Cli.Commands;

/// <summary>
/// <c>graft doctor</c>: what to paste into a bug report about wrong numbers or a libtorch that does not load — versions,
/// processor, threads, the oneDNN switches, the numerics guard's decision and timing, the Debian 12 libstdc++ step.
/// Exit 0 when libtorch loads and its convolutions can be trusted, 6 otherwise.
/// </summary>
internal static class DoctorCommand
{
    public static Command Create(CliContext ctx)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts instead of text." };
        var cmd = new Command("doctor", "Check this machine: versions, CPU, threads, oneDNN state, the numerics self-check and its timing, the Debian 12 libstdc++ step.") { json };
        cmd.SetAction(parse =>
        {
            var report = MachineReport.Collect();
            if (parse.GetValue(json))
            {
                ctx.Out.WriteLine(JsonSerializer.Serialize(report, CliJson.Options));
            }
            else
            {
                Render(ctx.Out, report);
            }
            return report.Healthy ? ExitCodes.Ok : ExitCodes.Numerics;
        });
        return cmd;
    }

    private static void Render(TextWriter o, MachineReport r)
    {
        static string OnOff(bool? b) => b switch { true => "on", false => "off", null => "unknown" };
        o.WriteLine($"graft       {r.Graft}");
        o.WriteLine($"TorchSharp  {r.TorchSharp}   libtorch {r.LibTorch.Version ?? "(not loaded)"}");
        o.WriteLine($".NET        {r.Runtime}   {r.OperatingSystem}");
        o.WriteLine($"cpu         {r.Cpu.Model} ({r.Cpu.Vendor}, {r.Cpu.Architecture}, {r.Cpu.LogicalProcessors} logical processors)");
        o.WriteLine($"cpu flags   {(r.Cpu.Flags.Count == 0 ? "(none of those that matter found)" : string.Join(' ', r.Cpu.Flags))}");
        var set = r.Environment.Where(kv => kv.Value is not null).Select(kv => $"{kv.Key}={kv.Value}").ToList();
        o.WriteLine($"environment {(set.Count == 0 ? "(none of the variables that change libtorch's kernels or the guard is set)" : string.Join("  ", set))}");
        if (!r.LibTorch.Loaded)
        {
            o.WriteLine($"libtorch    DID NOT LOAD: {r.LibTorch.Error}");
        }
        else
        {
            o.WriteLine($"libtorch    {r.LibTorch.Threads} threads; mkldnn (oneDNN) {OnOff(r.LibTorch.MkldnnBefore)} at start, {OnOff(r.LibTorch.MkldnnAfter)} now; oneDNN ISA cap {r.LibTorch.OneDnnIsaCap ?? "none"}");
        }
        if (r.GuardError is not null)
        {
            o.WriteLine($"guard       cannot run: {r.GuardError}");
        }
        else if (r.Guard is { } g)
        {
            o.WriteLine($"guard       mode {PolicyWords.Word(g.Mode)}, action {PolicyWords.Word(g.Action)}, {(g.Trusted ? "results trusted" : "RESULTS NOT TRUSTED")}");
            o.WriteLine($"            {g.Describe()}");
            foreach (var (label, check) in new[] { ("first check", g.FirstCheck), ("final check", g.FinalCheck) })
            {
                if (check is null)
                {
                    continue;
                }
                o.WriteLine($"{label}: {check.Describe()}; {check.Threads} threads, mkldnn {OnOff(check.MkldnnEnabled)}");
                foreach (var c in check.Cases)
                {
                    o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"    {(c.Within(check.Tolerance) ? "ok  " : "FAIL")} {c.Name,-24} forward {E(c.Forward)}  input grad {E(c.InputGradient)}  weight grad {E(c.WeightGradient)}   {c.Description}"));
                }
            }
        }
        o.WriteLine($"memory      {r.MemoryFile ?? "(no cache folder)"}: {(r.Remembered ? "oneDNN miscomputed here before; it is capped at AVX2 before its first kernel (delete the file to test AVX-512 again)" : "nothing remembered")}");
        o.WriteLine($"libstdc++   {r.LibStdCxx.SystemLibStdCxx ?? "-"}: {r.LibStdCxx.Note}");
        o.WriteLine(r.Healthy ? "healthy: Graft's computations can be trusted on this machine." : "NOT HEALTHY: Graft refuses to compute here (exit 6); see above.");
    }

    private static string E(double v) => double.IsNaN(v) ? "NaN    " : v.ToString("0.0e+0", CultureInfo.InvariantCulture).PadRight(7);
}
