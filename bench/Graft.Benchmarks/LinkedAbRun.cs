using System.Diagnostics;
using System.Globalization;

namespace Graft.Benchmarks;

/// <summary>
/// The linked-layer overhead measured A/B: plain and linked forward+backward alternate in one process, round after
/// round, so load from other processes falls on both alike; the ratio of medians (and of minimums) is the overhead.
/// BenchmarkDotNet runs the methods one after the other, which on a shared machine lets drift masquerade as overhead.
/// Usage: <c>linked-ab [rounds]</c>.
/// </summary>
internal static class LinkedAbRun
{
    public static int Run(int rounds)
    {
        var bench = new LinkedConvBenchmark();
        bench.Setup();
        try
        {
            Action[] runs = [bench.PlainConv2d_ForwardBackward, bench.FunctionalConv2dSquare_ForwardBackward, bench.LinkedConv2dSquare_ForwardBackward];
            string[] names = ["plain Conv2d", "functional square (by hand)", "linked square"];
            var times = runs.Select(_ => new List<double>()).ToArray();
            for (int w = 0; w < 3; w++)
            {
                foreach (var r in runs)
                {
                    r();
                }
            }
            var clock = new Stopwatch();
            for (int round = 0; round < rounds; round++)
            {
                // Rotate the order each round so no method always runs first.
                for (int k = 0; k < runs.Length; k++)
                {
                    int i = (k + round) % runs.Length;
                    clock.Restart();
                    runs[i]();
                    times[i].Add(clock.Elapsed.TotalMilliseconds);
                }
            }
            double Median(List<double> v)
            {
                var s = v.Order().ToList();
                return s.Count % 2 == 1 ? s[s.Count / 2] : (s[(s.Count / 2) - 1] + s[s.Count / 2]) / 2;
            }
            var basisMedian = Median(times[0]);
            var basisMin = times[0].Min();
            Console.WriteLine($"linked-ab: {rounds.ToString(CultureInfo.InvariantCulture)} rounds, batch 8, 64→64, 56×56, k3, forward+backward, one thread");
            for (int i = 0; i < runs.Length; i++)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {names[i],-28} median {Median(times[i]),7:0.00} ms  min {times[i].Min(),7:0.00} ms  ratio of medians {Median(times[i]) / basisMedian:0.000}  of minimums {times[i].Min() / basisMin:0.000}"));
            }
            return 0;
        }
        finally
        {
            bench.Cleanup();
        }
    }
}
