using Graft.Checkpoints;
using Graft.Growth;
using Graft.Tests.Growth;
using Graft.Transfer;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

/// <summary>
/// Issue 20, item 1: the verdict says what happened to the source's values and to its function, from typed counts. A
/// narrowing never reads "complete", a function-keeping widening never reads "incomplete", a reinitialisation a rule
/// asked for is reported as such.
/// </summary>
public class VerdictTests
{
    /// <summary>conv → BatchNorm → ReLU → conv → BatchNorm → ReLU → pool → fc, as ResNet's blocks are built.</summary>
    private static nn.Module<Tensor, Tensor> Net(int width, int classes, int inner = 0) => nn.Sequential(
        ("conv1", nn.Conv2d(3, width, 3, padding: 1, bias: false)), ("bn1", nn.BatchNorm2d(width)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(width, inner == 0 ? width : inner, 3, padding: 1, bias: false)), ("bn2", nn.BatchNorm2d(inner == 0 ? width : inner)), ("relu2", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(inner == 0 ? width : inner, classes)));

    private static TransferPlan Plan(nn.Module source, nn.Module target, TransferPolicy? policy = null)
    {
        using var s = StateDictCheckpoint.FromModule(source);
        using var t = StateDictCheckpoint.FromModule(target);
        return Graft.Transfer.WeightTransfer.Plan(s, t, policy);
    }

    [Fact]
    public void Narrowing_StatesTheShareOfSourceValuesLeftBehind_NeverComplete()
    {
        // 16 → 8 channels everywhere: conv1 keeps 8 of 16 filters (216 of 432 values), conv2 8×8 of 16×16 taps
        // (576 of 2,304), each BatchNorm vector 8 of 16, fc 8 of 16 inputs (80 of 160); 16 num_batches_tracked… copied.
        var plan = Plan(Net(16, 10), Net(8, 10));
        var s = plan.Summary;
        long values = 432 + 2304 + 160 + 10 + 2 * (4 * 16 + 1);
        long kept = 216 + 576 + 80 + 10 + 2 * (4 * 8 + 1);
        Assert.Equal(values, s.SourceValues);
        Assert.Equal(values - kept, s.SourceValuesLeftBehind);
        Assert.Equal(TransferVerdict.Partial, s.Verdict);
        Assert.Equal(0, s.Grown);
        Assert.Equal(11, s.Shrunk);
        string share = ReportSummary.Percent(values - kept, values);
        Assert.Equal($"partial: {share} of the source's values ({ReportSummary.Count(values - kept)} of {ReportSummary.Count(values)}) left behind", s.VerdictText);
        Assert.EndsWith(" %", share, StringComparison.Ordinal);
        Assert.DoesNotContain("complete", s.VerdictText, StringComparison.Ordinal);
    }

    [Fact]
    public void Widening_DefaultPolicy_GrowsAndKeepsTheFunction_NeverIncomplete()
    {
        // The inner width 8 → 12 (wide_resnet50_2 from ResNet-50 in small): new channels from the template's init behind
        // BatchNorm, read by conv2 and fc with zero weights, so the outputs are the source's.
        manual_seed(20);
        var source = Net(8, 5, inner: 8);
        var target = Net(8, 5, inner: 12);
        GrowthModels.RandomiseNorms(source, 21);
        var s = Plan(source, target).Summary;
        Assert.Equal(TransferVerdict.Grown, s.Verdict);
        Assert.True(s.GrowthKeepsFunction);
        Assert.Equal(0, s.SourceValuesLeftBehind);
        Assert.Equal(0, s.NotCarriedOver);
        Assert.DoesNotContain("incomplete", s.VerdictText, StringComparison.Ordinal);
        Assert.StartsWith("grown, function kept", s.VerdictText, StringComparison.Ordinal);

        var report = Graft.Transfer.WeightTransfer.Modules(source, target);
        Assert.Equal(s, report.Summary);
        source.eval();
        target.eval();
        var d = Verify.Compare(source, target, GrowthModels.Inputs(22, 2, 3, 6, 6), 2);
        Assert.True(d.Within(1e-5), $"max |diff| {d.MaxAbsolute}");
    }

    [Fact]
    public void ReinitOfTheHead_IsReportedAsAsked_NotIncompleteNorPartial()
    {
        var policy = TransferPolicy.Default with { Rules = [new TensorRule("fc.*") { Reinit = true }] };
        var s = Plan(Net(8, 10), Net(8, 4), policy).Summary;
        Assert.Equal(TransferVerdict.CompleteApartFromRequested, s.Verdict);
        Assert.Equal(2, s.OnRequest);
        Assert.Equal(0, s.NotCarriedOver);
        Assert.Equal(0, s.SourceValuesLeftBehind);
        Assert.StartsWith("complete apart from what you asked to reinitialise or skip", s.VerdictText, StringComparison.Ordinal);

        // Without the rule the same pair is the ordinary new head.
        Assert.Equal(TransferVerdict.CompleteApartFromNewHead, Plan(Net(8, 10), Net(8, 4)).Summary.Verdict);
    }

    [Fact]
    public void MissingTensor_IsIncomplete()
    {
        var source = nn.Sequential(("conv1", nn.Conv2d(3, 4, 3)));
        var target = nn.Sequential(("conv1", nn.Conv2d(3, 4, 3)), ("extra", nn.Conv2d(4, 4, 1)));
        var s = Plan(source, target).Summary;
        Assert.Equal(TransferVerdict.Incomplete, s.Verdict);
        Assert.Equal("incomplete: 2 target tensors not carried over", s.VerdictText);
    }

    /// <summary>A pre-norm block: LayerNorm over the channels, then a linear layer (a transformer's MLP in small).</summary>
    private sealed class PreNorm : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> norm, fc;

        public PreNorm(int width) : base(nameof(PreNorm))
        {
            norm = nn.LayerNorm(width);
            fc = nn.Linear(width, 3);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => fc.forward(norm.forward(x));
    }

    [Fact]
    public void WideningBehindLayerNorm_ChangesTheFunction_AndPreserveFunctionRefusesIt()
    {
        // Zero-padding channels is exact behind BatchNorm (per channel), not behind LayerNorm (over all channels).
        var plan = Plan(new PreNorm(4), new PreNorm(6), PreserveFunction.Policy);
        var s = plan.Summary;
        Assert.Equal(TransferVerdict.Grown, s.Verdict);
        Assert.False(s.GrowthKeepsFunction);
        Assert.Contains("LayerNorm or RMSNorm", s.VerdictText, StringComparison.Ordinal);
        Assert.StartsWith("grown, function changed", s.VerdictText, StringComparison.Ordinal);
        Assert.Contains(PreserveFunction.Problems(plan), p => p.StartsWith("norm.weight:", StringComparison.Ordinal) && p.Contains("LayerNorm", StringComparison.Ordinal));
        Assert.Throws<TransferStrictException>(() => PreserveFunction.EnsureKept(plan));
    }

    [Fact]
    public void NewHeadUnderPreserveFunction_IsARefusalNamingTheHead()
    {
        // ResNet-18 into a grey, 10-class ResNet-18 in small: the stem folds 3 inputs into 1 and the head changes class
        // count; both are refused with their reason, never an error about a rule the user did not give.
        var source = nn.Sequential(("conv1", nn.Conv2d(3, 8, 3)), ("bn1", nn.BatchNorm2d(8)), ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(8, 1000)));
        var target = nn.Sequential(("conv1", nn.Conv2d(1, 8, 3)), ("bn1", nn.BatchNorm2d(8)), ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(8, 10)));
        var problems = PreserveFunction.Problems(Plan(source, target, PreserveFunction.Policy));
        Assert.Contains("fc.weight: a classifier head with another class count (1000→10 classes): the source's logits cannot be kept", problems);
        Assert.Contains(problems, p => p.StartsWith("conv1.weight: inputs 3→1", StringComparison.Ordinal));
        Assert.DoesNotContain(problems, p => p.StartsWith("fc.bias", StringComparison.Ordinal));
    }

    [Fact]
    public void ReinitOfALinearLayer_UsesPyTorchsLinearInit_NotKaimingFanOut()
    {
        // A 512-input head: PyTorch draws U(−1/√512, 1/√512), std 0.0255; Kaiming fan-out on (1000, 512) would be 0.045 —
        // and on the head of 10 classes 0.44.
        var source = nn.Sequential(("fc", nn.Linear(512, 10)));
        var target = nn.Sequential(("fc", nn.Linear(512, 10)));
        var report = Graft.Transfer.WeightTransfer.Modules(source, target, TransferPolicy.Default with { Rules = [new TensorRule("fc.weight") { Reinit = true }] });
        Assert.Equal("reinit.linear-default", Assert.Single(report.Targets[0].Steps).Op);
        using var w = target.state_dict()["fc.weight"].detach().to(ScalarType.Float64);
        double bound = 1 / Math.Sqrt(512);
        Assert.True(w.abs().max().item<double>() <= bound);
        double std = w.std().item<double>();
        Assert.InRange(std, 0.9 * bound / Math.Sqrt(3), 1.1 * bound / Math.Sqrt(3));
    }

    [Theory]
    [InlineData(0, 100, "0 %")]
    [InlineData(1, 100_000, "under 0.1 %")]
    [InlineData(44, 1000, "4.4 %")]
    [InlineData(132, 256, "52 %")]
    public void Percent_ReadsAsPeopleReadShares(long part, long whole, string expected) =>
        Assert.Equal(expected, ReportSummary.Percent(part, whole));
}
