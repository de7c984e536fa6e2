using System.Globalization;
using Graft.Checkpoints;

namespace Graft.Fuzz;

/// <summary>
/// <c>Graft.Fuzz</c>: fuzz targets for the checkpoint readers.
/// <list type="bullet">
/// <item><c>afl FORMAT</c>: the AFL++ target (SharpFuzz), one input per run on standard input or the AFL file.</item>
/// <item><c>smoke [--iterations N] [--seed S] [--time-limit SECONDS] [--crashes DIR] [--format F]...</c>: the managed mutation runner.</item>
/// <item><c>run FORMAT FILE...</c>: runs saved inputs once and prints each outcome (reproduction).</item>
/// <item><c>seeds DIR</c>: writes every format's seeds to DIR/FORMAT/, the starting corpus for AFL++.</item>
/// <item><c>targets</c>: lists the format names a target can be chosen by.</item>
/// </list>
/// </summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 0)
        {
            return Usage();
        }
        switch (args[0])
        {
            case "targets":
                foreach (var f in SeedCorpus.Formats)
                {
                    Console.WriteLine(f.Name);
                }
                return 0;
            case "afl" when args.Length == 2:
                return Afl(args[1]);
            case "run" when args.Length >= 3:
                return Reproduce(CheckpointFile.GetFormat(args[1]), args[2..]);
            case "seeds" when args.Length == 2:
                return WriteSeeds(args[1]);
            case "smoke":
                return Smoke(args[1..]);
            default:
                return Usage();
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: Graft.Fuzz targets | afl FORMAT | run FORMAT FILE... | seeds DIR |");
        Console.Error.WriteLine("       smoke [--iterations N] [--seed S] [--time-limit SECONDS] [--crashes DIR] [--format F]...");
        return 1;
    }

    // No code of Graft.Checkpoints may run before Fuzzer.OutOfProcess.Run: SharpFuzz's instrumentation writes to
    // AFL's shared coverage map, which exists only from then on. So the format is resolved inside the callback.
    private static int Afl(string formatName)
    {
        var path = Path.Combine(Path.GetTempPath(), $"graft-afl-{Environment.ProcessId}-{formatName}");
        try
        {
            SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
            {
                using (var file = File.Create(path))
                {
                    stream.CopyTo(file);
                }
                FuzzTarget.RunForAfl(CheckpointFile.GetFormat(formatName), path);
            });
        }
        finally
        {
            File.Delete(path);
        }
        return 0;
    }

    private static int Reproduce(ICheckpointFormat format, string[] files)
    {
        var bugs = 0;
        foreach (var file in files)
        {
            var copy = Path.Combine(Path.GetTempPath(), $"graft-repro-{Environment.ProcessId}{FuzzTarget.Extension(format)}");
            var outcome = SmokeRunner.RunOne(format, copy, File.ReadAllBytes(file), TimeSpan.FromSeconds(30));
            File.Delete(copy);
            Console.WriteLine($"{file}: {outcome.Kind}{(outcome.Detail.Length > 0 ? ": " + outcome.Detail : "")} (allocated {outcome.AllocatedBytes:N0} bytes)");
            bugs += outcome.IsBug ? 1 : 0;
        }
        return bugs == 0 ? 0 : 2;
    }

    private static int WriteSeeds(string folder)
    {
        foreach (var seed in SeedCorpus.All(SeedCorpus.FindRepositoryRoot()))
        {
            var dir = Directory.CreateDirectory(Path.Combine(folder, seed.Format));
            File.WriteAllBytes(Path.Combine(dir.FullName, seed.Name), seed.Bytes);
        }
        Console.WriteLine($"seeds written under {folder}/<format>/");
        return 0;
    }

    private static int Smoke(string[] args)
    {
        var options = new SmokeOptions();
        var formats = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--iterations": options = options with { Iterations = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--seed": options = options with { Seed = int.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--time-limit": options = options with { TimeLimit = TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture)) }; break;
                case "--crashes": options = options with { CrashFolder = Path.GetFullPath(Next()) }; break;
                case "--format": formats.Add(Next()); break;
                default: return Usage();
            }
        }
        if (formats.Count > 0)
        {
            options = options with { Formats = formats };
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var result = SmokeRunner.Run(options, Console.Error.WriteLine);
        Console.WriteLine(result.Summary());
        Console.WriteLine($"{watch.Elapsed.TotalSeconds:0.0} s");
        return result.Failures.Count == 0 ? 0 : 2;
    }
}
