using Graft.Transfer;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

/// <summary>The summary's verdict says what a transfer means for the model; <c>Complete</c> keeps the strict meaning.</summary>
public class ReportVerdictTests
{
    private static nn.Module<Tensor, Tensor> Net(int stemOut, int classes) => nn.Sequential(
        ("conv1", nn.Conv2d(3, stemOut, 3)), ("relu", nn.ReLU()), ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()),
        ("fc", nn.Linear(stemOut, classes)));

    [Fact]
    public void Summary_SameArchitecture_IsComplete()
    {
        var s = Graft.Transfer.WeightTransfer.Modules(Net(8, 10), Net(8, 10)).Summary;
        Assert.Equal(TransferVerdict.Complete, s.Verdict);
        Assert.True(s.Complete);
        Assert.Equal(0, s.NewHead);
        Assert.Equal(0, s.NotCarriedOver);
        Assert.StartsWith("complete:", s.VerdictText);
    }

    [Fact]
    public void Summary_NewHeadWithAnotherClassCount_IsCompleteApartFromNewHeadButNotStrictlyComplete()
    {
        var report = Graft.Transfer.WeightTransfer.Modules(Net(8, 10), Net(8, 5));
        var s = report.Summary;
        Assert.Equal(TransferVerdict.CompleteApartFromNewHead, s.Verdict);
        Assert.False(s.Complete);               // the strict meaning: --strict would refuse it
        Assert.Equal(2, s.NewHead);             // fc.weight and fc.bias
        Assert.Equal(0, s.NotCarriedOver);
        Assert.Contains("apart from a new head", s.VerdictText);
        Assert.Contains("\"verdict\": \"complete-apart-from-new-head\"", report.ToJson());
        Assert.Contains("\"complete\": false", report.ToJson());
    }

    [Fact]
    public void Report_AccountsForEverySource_AndWritesTheSameJsonItSerialises()
    {
        var report = Graft.Transfer.WeightTransfer.Modules(Net(8, 10), Net(8, 5));
        // The new head keeps its init: the source's fc tensors made nothing; every other source made its namesake.
        Assert.Equal(["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"], report.Sources.Select(s => s.Name));
        Assert.Equal(["conv1.weight"], report.Sources[0].UsedBy);
        Assert.Equal(["conv1.bias"], report.Sources[1].UsedBy);
        Assert.Empty(report.Sources[2].UsedBy);
        Assert.Empty(report.Sources[3].UsedBy);
        Assert.Equal([8L, 3, 3, 3], report.Sources[0].Shape);
        // Entries are made when read: each read gives the expected entries (conv1 copied, the new head kept), and the
        // second read the same as the first.
        (string, TargetStatus)[] expected =
            [("conv1.weight", TargetStatus.Copied), ("conv1.bias", TargetStatus.Copied), ("fc.weight", TargetStatus.Kept), ("fc.bias", TargetStatus.Kept)];
        Assert.Equal(expected, report.Targets.Select(t => (t.Name, t.Status)));
        Assert.Equal(expected, report.Targets.Select(t => (t.Name, t.Status)));
        Assert.Equal("fc.weight", report.Targets[2].Name);
        Assert.Throws<ArgumentOutOfRangeException>(() => report.Targets[4]);
        using var stream = new MemoryStream();
        report.WriteJson(stream);
        Assert.Equal(report.ToJson(), System.Text.Encoding.UTF8.GetString(stream.ToArray()));
    }

    [Fact]
    public void Summary_WiderStemFilledFromTheTemplate_IsGrownNotIncomplete()
    {
        // conv1 8→12 out channels: every source value is carried over and 4 new channels keep the template's init, so
        // conv1.weight and conv1.bias grew (not "not carried over"); fc's class count differs: a new head.
        var s = Graft.Transfer.WeightTransfer.Modules(Net(8, 10), Net(12, 5)).Summary;
        Assert.Equal(TransferVerdict.Grown, s.Verdict);
        Assert.Equal(0, s.NotCarriedOver);
        Assert.Equal(2, s.Grown);
        Assert.Equal(2, s.NewHead);
        Assert.True(s.GrowthKeepsFunction);
        Assert.StartsWith("grown, function kept: every source value carried over; 2 target tensors gained channels", s.VerdictText, StringComparison.Ordinal);
        Assert.EndsWith("; a new head: the classifier head (2 tensors) keeps its init", s.VerdictText, StringComparison.Ordinal);
        Assert.DoesNotContain("incomplete", s.VerdictText, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_NewHead_CarriesTheVerdictCounts()
    {
        var report = Graft.Transfer.WeightTransfer.Modules(Net(8, 10), Net(8, 5));
        Assert.Contains("\"newHead\": 2", report.ToJson());
        Assert.Contains("\"notCarriedOver\": 0", report.ToJson());
    }
}
