using Graft.Fuzz;


namespace Graft.Checkpoints.Tests.Fuzz;

/// <summary>
/// A short run of the mutation fuzzer over every registered format, so <c>dotnet test</c> catches a reader regression
/// that a hand-written test misses. The long campaign is a command in fuzz/README.md.
/// </summary>
public sealed class FuzzSmokeTests
{
    [Fact]
    public void Smoke_TwoThousandMutationsOverEveryFormat_OnlySuccessOrFormatErrorsAndSomeOfEach()
    {
        var crashes = Directory.CreateTempSubdirectory("graft-fuzz-test-crashes-").FullName;
        var result = SmokeRunner.Run(new SmokeOptions { Iterations = 2000, Seed = 20240601, CrashFolder = crashes, TimeLimit = TimeSpan.FromSeconds(20) });

        Assert.True(result.Failures.Count == 0, result.Summary());
        Assert.True(result.Inputs >= 2000 - SeedCorpus.Formats.Count, result.Summary());
        // Every format saw mutations it accepted as well as ones it refused: the mutations reach past the first check,
        // and a reader that refused everything (its seeds are accepted unmutated, or the run records a failure) fails here.
        foreach (var f in SeedCorpus.Formats)
        {
            Assert.True(result.Rejected.GetValueOrDefault(f.Name) > 0, $"{f.Name}: no mutation was rejected\n{result.Summary()}");
            Assert.True(result.Accepted.GetValueOrDefault(f.Name) > 0, $"{f.Name}: no mutation was accepted\n{result.Summary()}");
        }
        Directory.Delete(crashes, recursive: true);
    }

    [Fact]
    public void Seeds_EveryRegisteredFormat_HasValidSeedsTheReaderAccepts()
    {
        var root = SeedCorpus.FindRepositoryRoot();
        using var dir = new TempDir();
        foreach (var format in SeedCorpus.Formats)
        {
            var seeds = SeedCorpus.For(format, root);
            Assert.NotEmpty(seeds);
            foreach (var seed in seeds)
            {
                var outcome = SmokeRunner.RunOne(format, dir.File("seed" + FuzzTarget.Extension(format)), seed.Bytes, TimeSpan.FromSeconds(20));
                Assert.True(outcome.Kind == OutcomeKind.Accepted, $"{format.Name} seed {seed.Name}: {outcome.Kind}: {outcome.Detail}");
            }
        }
    }
}
