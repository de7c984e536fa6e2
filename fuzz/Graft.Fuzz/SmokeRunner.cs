using System.Diagnostics;
using System.Globalization;
using Graft.Checkpoints;

namespace Graft.Fuzz;

/// <summary>Settings of one smoke campaign.</summary>
internal sealed record SmokeOptions
{
    /// <summary>Mutated inputs in all, shared evenly between the formats.</summary>
    public int Iterations { get; init; } = 2000;

    /// <summary>Seed of the mutation random number generator; the same seed gives the same inputs.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Longest one input may take (open and read every tensor) before it counts as a hang.</summary>
    public TimeSpan TimeLimit { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Where failing inputs are saved for reproduction.</summary>
    public string CrashFolder { get; init; } = Path.Combine(Path.GetTempPath(), "graft-fuzz-crashes");

    /// <summary>Formats to fuzz (by name); null for every registered format.</summary>
    public IReadOnlyCollection<string>? Formats { get; init; }

    /// <summary>The repository root (for the fixture files).</summary>
    public string RepositoryRoot { get; init; } = SeedCorpus.FindRepositoryRoot();
}

/// <summary>A failing input: which format, from which seed, by which mutations, what happened, and where it is saved.</summary>
internal sealed record SmokeFailure(string Format, string Seed, int Iteration, IReadOnlyList<string> Mutations, Outcome Outcome, string SavedAs)
{
    public override string ToString() =>
        $"{Format} #{Iteration} from {Seed} [{string.Join("; ", Mutations)}]: {Outcome.Kind}: {Outcome.Detail.Split('\n')[0]}\n  saved as {SavedAs}";
}

/// <summary>The totals of a campaign.</summary>
internal sealed class SmokeResult
{
    public List<SmokeFailure> Failures { get; } = [];

    public Dictionary<string, int> Accepted { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, int> Rejected { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, int> RejectionKinds { get; } = new(StringComparer.Ordinal);

    public long MaxAllocated { get; set; }

    public TimeSpan Slowest { get; set; }

    public int Inputs => Accepted.Values.Sum() + Rejected.Values.Sum() + Failures.Count;

    public string Summary()
    {
        var lines = new List<string>();
        foreach (var f in Accepted.Keys.Union(Rejected.Keys).Order(StringComparer.Ordinal))
        {
            lines.Add($"{f}: {Accepted.GetValueOrDefault(f)} accepted, {Rejected.GetValueOrDefault(f)} rejected");
        }
        lines.Add($"{Inputs} inputs, {Failures.Count} failures; slowest input {Slowest.TotalMilliseconds:0} ms; most allocated by a reader {MaxAllocated:N0} bytes");
        lines.Add("rejections by kind: " + string.Join(", ", RejectionKinds.OrderByDescending(k => k.Value).Select(k => $"{k.Key} {k.Value}")));
        lines.AddRange(Failures.Select(f => f.ToString()));
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>
/// The managed mutation runner: every seed of every format, unmutated first (it must be accepted), then seeded
/// mutations, each run through <see cref="FuzzTarget"/> on its own thread under a time limit.
/// </summary>
internal static class SmokeRunner
{
    /// <summary>Runs a campaign; <paramref name="progress"/> gets a line now and then.</summary>
    public static SmokeResult Run(SmokeOptions options, Action<string>? progress = null)
    {
        var result = new SmokeResult();
        var formats = SeedCorpus.Formats.Where(f => options.Formats is null || options.Formats.Contains(f.Name)).ToList();
        if (formats.Count == 0)
        {
            throw new ArgumentException($"No registered format matches {string.Join(", ", options.Formats ?? [])}.", nameof(options));
        }
        var work = Directory.CreateTempSubdirectory("graft-fuzz-");
        try
        {
            var perFormat = Math.Max(1, options.Iterations / formats.Count);
            foreach (var format in formats)
            {
                var seeds = SeedCorpus.For(format, options.RepositoryRoot);
                var rng = new Random(unchecked(options.Seed * 7919 + StableHash(format.Name)));
                var input = Path.Combine(work.FullName, "input" + FuzzTarget.Extension(format));
                foreach (var seed in seeds)
                {
                    var outcome = RunOne(format, input, seed.Bytes, options.TimeLimit, result);
                    if (outcome.Kind != OutcomeKind.Accepted)
                    {
                        Record(result, options, format, seed, -1, ["(unmutated seed must be accepted)"], seed.Bytes,
                            outcome with { Kind = outcome.IsBug ? outcome.Kind : OutcomeKind.Crash, Detail = "valid seed not accepted: " + outcome.Detail });
                    }
                }
                for (var i = 0; i < perFormat; i++)
                {
                    var seed = seeds[rng.Next(seeds.Count)];
                    var log = new List<string>();
                    var bytes = Mutations.Mutate(format.Name, seed.Bytes, rng, log);
                    var outcome = RunOne(format, input, bytes, options.TimeLimit, result);
                    switch (outcome.Kind)
                    {
                        case OutcomeKind.Accepted:
                            result.Accepted[format.Name] = result.Accepted.GetValueOrDefault(format.Name) + 1;
                            break;
                        case OutcomeKind.Rejected:
                            result.Rejected[format.Name] = result.Rejected.GetValueOrDefault(format.Name) + 1;
                            var kind = format.Name + "/" + outcome.Detail.Split(':')[0];
                            result.RejectionKinds[kind] = result.RejectionKinds.GetValueOrDefault(kind) + 1;
                            break;
                        default:
                            Record(result, options, format, seed, i, log, bytes, outcome);
                            break;
                    }
                    if (outcome.Kind == OutcomeKind.Hang)
                    {
                        // The hung thread still runs; later inputs would measure it, not themselves.
                        return result;
                    }
                    if (progress is not null && (i + 1) % 5000 == 0)
                    {
                        progress($"{format.Name}: {i + 1}/{perFormat}, {result.Failures.Count} failures");
                    }
                }
            }
            return result;
        }
        finally
        {
            try
            {
                work.Delete(recursive: true);
            }
            catch (IOException)
            {
                // A hung reader may still hold the input open.
            }
        }
    }

    /// <summary>Runs one input on a fresh thread, so the time limit holds and the allocation count is the reader's alone.</summary>
    public static Outcome RunOne(ICheckpointFormat format, string path, byte[] bytes, TimeSpan timeLimit, SmokeResult? stats = null)
    {
        File.WriteAllBytes(path, bytes);
        Outcome? outcome = null;
        var watch = Stopwatch.StartNew();
        var thread = new Thread(() => outcome = FuzzTarget.Run(format, path), 16 << 20) { IsBackground = true, Name = "fuzz target" };
        thread.Start();
        if (!thread.Join(timeLimit))
        {
            return new Outcome(OutcomeKind.Hang, $"no result after {timeLimit.TotalSeconds:0.#} s", 0);
        }
        if (stats is not null)
        {
            stats.Slowest = watch.Elapsed > stats.Slowest ? watch.Elapsed : stats.Slowest;
            stats.MaxAllocated = Math.Max(stats.MaxAllocated, outcome!.AllocatedBytes);
        }
        return outcome!;
    }

    private static void Record(SmokeResult result, SmokeOptions options, ICheckpointFormat format, Seed seed, int iteration, List<string> log, byte[] bytes, Outcome outcome)
    {
        Directory.CreateDirectory(options.CrashFolder);
        var name = $"{format.Name}-s{options.Seed}-{(iteration < 0 ? "seed-" + seed.Name : iteration.ToString(CultureInfo.InvariantCulture))}-{outcome.Kind.ToString().ToLowerInvariant()}";
        var saved = Path.Combine(options.CrashFolder, name + FuzzTarget.Extension(format));
        File.WriteAllBytes(saved, bytes);
        File.WriteAllText(saved + ".txt",
            $"format: {format.Name}\nseed input: {seed.Name}\nmutations: {string.Join("; ", log)}\noutcome: {outcome.Kind}\n{outcome.Detail}\n" +
            $"reproduce: dotnet run --project fuzz/Graft.Fuzz -c Release -- run {format.Name} {saved}\n");
        result.Failures.Add(new SmokeFailure(format.Name, seed.Name, iteration, log, outcome, saved));
    }

    // string.GetHashCode is randomised per process; the campaign must be reproducible from its seed.
    private static int StableHash(string s)
    {
        var h = 17;
        foreach (var c in s)
        {
            h = unchecked(h * 31 + c);
        }
        return h;
    }
}
