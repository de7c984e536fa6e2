using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Cli.Tests;

/// <summary>
/// Issue 20: plan and transfer say the same thing (summary, Verdict line, table, JSON), <c>--preserve-function</c>
/// refuses with exit 5 and the reason, and an output extension no format claims is refused before anything is written.
/// </summary>
public sealed class OneVoiceTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private static nn.Module<Tensor, Tensor> ResNetLike(int inputs, int width, int classes) => nn.Sequential(
        ("conv1", nn.Conv2d(inputs, width, 3, padding: 1, bias: false)), ("bn1", nn.BatchNorm2d(width)), ("relu", nn.ReLU()),
        ("conv2", nn.Conv2d(width, 8, 3, padding: 1, bias: false)), ("bn2", nn.BatchNorm2d(8)),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(8, classes)));

    private static IEnumerable<string> Lines(string stdout, string prefix) =>
        stdout.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith(prefix, StringComparison.Ordinal) || l.Contains(" target tensors: ", StringComparison.Ordinal));

    [Theory]
    [InlineData(3, 16, 10, "complete apart from a new head")] // new head
    [InlineData(3, 24, 1000, "grown, function kept")]            // wider stem behind BatchNorm
    [InlineData(3, 8, 1000, "partial: ")]                         // narrower stem
    [InlineData(1, 16, 10, "complete apart from a new head")]   // grey stem summed, new head
    public void PlanAndTransfer_PrintTheSameSummaryVerdictAndJson(int inputs, int width, int classes, string verdict)
    {
        manual_seed(20);
        var src = _h.Save(ResNetLike(3, 16, 1000), "src.safetensors");
        var tpl = _h.Save(ResNetLike(inputs, width, classes), "tpl.safetensors");
        var (pcode, plan, perr) = _h.Run("plan", src, "--into", tpl);
        Assert.True(pcode == 0, perr);
        var (tcode, transfer, terr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"));
        Assert.True(tcode == 0, terr);
        var planLines = Lines(plan, "Verdict: ").ToList();
        Assert.Equal(2, planLines.Count);
        Assert.Equal(planLines, Lines(transfer, "Verdict: "));
        Assert.StartsWith("Verdict: " + verdict, planLines[1], StringComparison.Ordinal);
        // The same table header: target, status, shape, reason.
        Assert.Matches(@"target\s+status\s+shape\s+reason", plan);
        Assert.Matches(@"target\s+status\s+shape\s+reason", transfer);

        var (_, planJson, _) = _h.Run("plan", src, "--into", tpl, "--json");
        var (_, transferJson, _) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o2.safetensors"), "--json");
        var p = JsonNode.Parse(planJson)!.AsObject();
        var t = JsonNode.Parse(transferJson)!.AsObject();
        Assert.Null(p["output"]);
        Assert.NotNull(t["output"]);
        t.Remove("output");
        Assert.Equal(t.ToJsonString(), p.ToJsonString());
        Assert.Equal(planLines[1], "Verdict: " + p["summary"]!["verdictText"]!.GetValue<string>() + ".");
    }

    [Fact]
    public void Plan_PreserveFunctionIntoAGrey10ClassModel_Exits5WithTheReasons()
    {
        manual_seed(21);
        var src = _h.Save(ResNetLike(3, 16, 1000), "r18.safetensors");
        var tpl = _h.Save(ResNetLike(1, 16, 10), "r18_gray10.safetensors");
        var (code, _, stderr) = _h.Run("plan", src, "--into", tpl, "--preserve-function");
        Assert.Equal(5, code);
        Assert.Contains("--preserve-function: the source's function cannot be kept", stderr);
        Assert.Contains("fc.weight: a classifier head with another class count (1000→10 classes)", stderr);
        Assert.Contains("conv1.weight: inputs 3→1", stderr);
        Assert.DoesNotContain("zero-extend", stderr);

        var (tcode, _, _) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--preserve-function");
        Assert.Equal(5, tcode);
        Assert.False(File.Exists(_h.PathOf("o.safetensors")));
    }

    [Fact]
    public void PreserveFunction_WiderBehindBatchNorm_IsAccepted()
    {
        manual_seed(22);
        var src = _h.Save(ResNetLike(3, 16, 10), "src.safetensors");
        var tpl = _h.Save(ResNetLike(3, 24, 10), "tpl.safetensors");
        var (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl, "--preserve-function");
        Assert.True(code == 0, stderr);
        Assert.Contains("Verdict: grown, function kept", stdout);
    }

    [Theory]
    [InlineData("x.h5")]
    [InlineData("x.weights")]
    [InlineData("x")]
    public void Transfer_OutputExtensionNoFormatClaims_Exit2AndNothingWritten(string name)
    {
        manual_seed(23);
        var src = _h.Save(ResNetLike(3, 16, 10), "src.safetensors");
        var tpl = _h.Save(ResNetLike(3, 16, 10), "tpl.safetensors");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf(name));
        Assert.Equal(2, code);
        Assert.Contains("no format Graft writes uses the extension", stderr);
        Assert.Equal(["src.safetensors", "tpl.safetensors"], _h.Files());

        // convert follows the same rule with the same words.
        var (ccode, _, cerr) = _h.Run("convert", src, _h.PathOf(name));
        Assert.Equal(2, ccode);
        Assert.Contains("no format Graft writes uses the extension", cerr);

        // --format says otherwise.
        var (fcode, _, ferr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf(name), "--format", "pytorch");
        Assert.True(fcode == 0, ferr);
        Assert.True(File.Exists(_h.PathOf(name)));
    }

    [Fact]
    public void Seed_NotANumber_SaysSoWithoutADotNetTypeName()
    {
        var src = _h.Save(ResNetLike(3, 16, 10), "src.safetensors");
        var (code, _, stderr) = _h.Run("plan", src, "--into", src, "--seed", "abc");
        Assert.Equal(64, code);
        Assert.Contains("--seed: expected a whole number, got 'abc'", stderr);
        Assert.DoesNotContain("System.", stderr);
    }

    [Fact]
    public void Show_OutputThatIsNotPng_Exit2AndNothingWritten()
    {
        manual_seed(24);
        var src = _h.Save(ResNetLike(3, 16, 10), "src.safetensors");
        var (code, _, stderr) = _h.Run("show", src, "--tensor", "conv1.weight", "--out", _h.PathOf("s.jpg"));
        Assert.Equal(2, code);
        Assert.Contains("PNG", stderr);
        Assert.Equal(["src.safetensors"], _h.Files());
    }
}
