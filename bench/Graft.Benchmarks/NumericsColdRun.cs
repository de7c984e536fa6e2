using System.Diagnostics;
using System.Globalization;
using Graft.Numerics;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Graft.Benchmarks;

/// <summary>
/// What the numerics self-check costs a fresh process, where it runs before anything else is warm:
/// <c>numerics-cold [processes]</c> starts this program again in child processes, interleaved, each timing one of
/// (a) the check alone, (b) a small first training step (two convolutions, forward and backward) alone, and (c) the
/// check followed by that step; prints the medians and (c) − (b), the check's cost on top of a first step a user pays
/// anyway. libtorch is loaded and one tiny op run before each clock starts. Runs with the guard off so that the check
/// timed is exactly <see cref="NumericsCheck.Run"/>; set <c>DNNL_MAX_CPU_ISA</c> to time it as a capped host runs it.
/// </summary>
internal static class NumericsColdRun
{
    public static int Run(int processes)
    {
        var times = new Dictionary<string, List<double>> { ["check"] = [], ["step"] = [], ["check+step"] = [] };
        var self = Environment.ProcessPath!;
        var dll = typeof(NumericsColdRun).Assembly.Location;
        for (int i = 0; i < processes; i++)
        {
            foreach (var mode in i % 2 == 0 ? new[] { "check", "step", "check+step" } : ["check+step", "step", "check"])
            {
                var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false, RedirectStandardError = true };
                if (Path.GetFileNameWithoutExtension(self) == "dotnet")
                {
                    psi.ArgumentList.Add(dll);
                }
                psi.ArgumentList.Add("numerics-cold-child");
                psi.ArgumentList.Add(mode);
                psi.Environment["GRAFT_NUMERICS_GUARD"] = "off";
                using var p = Process.Start(psi)!;
                var output = p.StandardOutput.ReadToEnd();
                p.StandardError.ReadToEnd();
                p.WaitForExit();
                times[mode].Add(double.Parse(output.Trim(), CultureInfo.InvariantCulture));
            }
        }
        double Median(string m)
        {
            var t = times[m].Order().ToList();
            return t[t.Count / 2];
        }
        string Range(string m) => string.Create(CultureInfo.InvariantCulture, $"median {Median(m),6:0.0} ms (range {times[m].Min():0.0}–{times[m].Max():0.0})");
        var isa = Environment.GetEnvironmentVariable("DNNL_MAX_CPU_ISA") ?? "default";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{processes} processes each; DNNL_MAX_CPU_ISA={isa}; {Environment.ProcessorCount} cores"));
        Console.WriteLine($"(a) check alone                {Range("check")}");
        Console.WriteLine($"(b) first training step alone  {Range("step")}");
        Console.WriteLine($"(c) check, then the step       {Range("check+step")}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"the check's cost on top of the step: (c) - (b) = {Median("check+step") - Median("step"):0.0} ms (budget 50 ms)"));
        return 0;
    }

    /// <summary>One timed run in this (fresh) process; prints milliseconds.</summary>
    public static int Child(string mode)
    {
        using (var warm = zeros(1))
        {
        }
        var clock = Stopwatch.StartNew();
        if (mode.StartsWith("check", StringComparison.Ordinal))
        {
            NumericsCheck.Run();
        }
        if (mode.EndsWith("step", StringComparison.Ordinal))
        {
            using var scope = NewDisposeScope();
            var x = randn(8, 3, 32, 32);
            var w1 = randn(16, 3, 3, 3).requires_grad_(true);
            var w2 = randn(32, 16, 3, 3).requires_grad_(true);
            F.conv2d(F.relu(F.conv2d(x, w1, padding: [1, 1])), w2, padding: [1, 1]).sum().backward();
        }
        Console.WriteLine(clock.Elapsed.TotalMilliseconds.ToString("0.00", CultureInfo.InvariantCulture));
        return 0;
    }
}
