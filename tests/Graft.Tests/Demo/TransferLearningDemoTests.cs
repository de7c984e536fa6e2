using Graft.Demo;

namespace Graft.Tests.Demo;

public class TransferLearningDemoTests
{
    [Fact]
    public void MeanStd_FourValues_MatchesHandComputedSampleStd()
    {
        var m = MeanStd.Of([1.0, 2.0, 3.0, 4.0]);
        Assert.Equal(2.5, m.Mean, 15);
        // Σ(x − 2.5)² = 5, divided by n − 1 = 3.
        Assert.Equal(Math.Sqrt(5.0 / 3.0), m.Std, 15);
        Assert.Equal(4, m.Count);
        Assert.Equal(0.0, MeanStd.Of([0.7]).Std);
        Assert.Throws<ArgumentException>(() => MeanStd.Of([]));
        Assert.True(double.IsNaN(MeanStd.Of([1.0, double.NaN]).Mean));
    }

    [Fact]
    public void Gap_PairsEachSeedsArms_AndAveragesOverFineTuningEpochsOnly()
    {
        static EpochStats[] H(params double[] acc) => [.. acc.Select((a, e) => new EpochStats(e, 1, 1, a))];
        // Epoch 0 (before training) must not enter the area under the curve: it is 0.9 for scratch here on purpose.
        var runs = new[]
        {
            new FineTuneRun(1, H(0.1, 0.6, 0.8), H(0.9, 0.5, 0.6)),
            new FineTuneRun(2, H(0.1, 0.5, 0.7), H(0.9, 0.5, 0.8)),
        };
        var r = new TransferLearningResult(1, null!, null!, null!, null!, runs, TimeSpan.Zero);
        // Final gaps: +0.2 and −0.1 → mean 0.05, std sqrt(((0.15)² + (0.15)²) / 1).
        Assert.Equal(0.05, r.Gap.Final.Mean, 12);
        Assert.Equal(Math.Sqrt(2 * 0.15 * 0.15), r.Gap.Final.Std, 12);
        // Over epochs 1–2: (0.7 − 0.55) = 0.15 and (0.6 − 0.65) = −0.05 → mean 0.05.
        Assert.Equal(0.05, r.Gap.OverEpochs.Mean, 12);
        Assert.Equal(1, r.SeedsAhead);
        var (epoch, t, s) = r.AccuracyByEpoch[2];
        Assert.Equal((2, 0.75, 0.7), (epoch, t.Mean, s.Mean));
    }
}
