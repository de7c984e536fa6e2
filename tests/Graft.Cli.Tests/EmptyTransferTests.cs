using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Cli.Tests;

/// <summary>
/// Issue 19, item 5: a transfer that would carry nothing over is refused (exit 5, nothing written) with the likely cause
/// and the fix; options that match nothing are warnings.
/// </summary>
public sealed class EmptyTransferTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private static nn.Module<Tensor, Tensor> Net() => nn.Sequential(("conv1", nn.Conv2d(3, 8, 3)), ("bn1", nn.BatchNorm2d(8)), ("conv2", nn.Conv2d(8, 8, 3)));

    private (string Plain, string Wrapped) PlainAndWrapped()
    {
        manual_seed(19);
        var plain = _h.Save(Net(), "plain.safetensors");
        var wrapped = _h.Save(nn.Sequential(("backbone", Net()), ("fc", nn.Linear(8, 4))), "wrapped.safetensors");
        return (plain, wrapped);
    }

    [Fact]
    public void Transfer_IntoBackbonePrefixedTemplate_RefusedWithTheRenameThatMatches()
    {
        var (plain, wrapped) = PlainAndWrapped();
        var outPath = _h.PathOf("out.safetensors");
        var (code, stdout, stderr) = _h.Run("transfer", plain, "--into", wrapped, "--out", outPath);
        Assert.Equal(5, code);
        Assert.Contains("'backbone.'", stderr);
        Assert.Contains("--rename '^=backbone.'", stderr);
        Assert.Contains("Nothing was written", stderr);
        Assert.DoesNotContain("wrote", stdout);
        Assert.False(File.Exists(outPath));

        // The fix it names works: everything but the head is copied.
        (code, stdout, stderr) = _h.Run("transfer", plain, "--into", wrapped, "--out", outPath, "--rename", "^=backbone.", "--json");
        Assert.True(code == 0, stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        Assert.Equal(9, doc.RootElement.GetProperty("targets").EnumerateArray().Count(t => t.GetProperty("status").GetString() == "copied"));
    }

    [Fact]
    public void Plan_FromWrappedSourceIntoPlainTemplate_RefusedWithTheStrippingRename()
    {
        var (plain, wrapped) = PlainAndWrapped();
        var (code, _, stderr) = _h.Run("plan", wrapped, "--into", plain);
        Assert.Equal(5, code);
        Assert.Contains(@"--rename '^backbone\.='", stderr);
    }

    [Fact]
    public void Transfer_OnlyTheHeadMatches_Refused()
    {
        manual_seed(19);
        var src = _h.Save(nn.Sequential(("features", nn.Conv2d(3, 8, 3)), ("fc", nn.Linear(8, 4))), "src.safetensors");
        var tpl = _h.Save(nn.Sequential(("stem", nn.Conv2d(3, 8, 3)), ("fc", nn.Linear(8, 4))), "tpl.safetensors");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"));
        Assert.Equal(5, code);
        Assert.Contains("only the classifier head", stderr);
        Assert.DoesNotContain(_h.Files(), f => f.StartsWith("o.", StringComparison.Ordinal));
    }

    [Fact]
    public void Transfer_RuleRenameAndImageSizeMatchingNothing_AreWarnings()
    {
        var (plain, _) = PlainAndWrapped();
        var (code, stdout, stderr) = _h.Run("transfer", plain, "--into", plain, "--out", _h.PathOf("o.safetensors"),
            "--skip", "decoder.*", "--rename", "^nothing_here\\.(.*)=$1", "--image-size", "384");
        Assert.True(code == 0, stderr);
        Assert.Contains("warning: rule 'decoder.*' matches no template tensor", stdout);
        Assert.Contains("warning: rename '^nothing_here\\.(.*)' matches no source tensor", stdout);
        Assert.Contains("warning: --image-size", stdout);
    }
}

/// <summary>Issue 19: an ONNX source whose names share nothing with the template is matched by its graph, with no option.</summary>
public sealed class GraphMatchCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    [MlNetAndExportsFact]
    public void Transfer_MlNetResNet18IntoTorchvisionResNet18_MatchedByStructureWithNoOption()
    {
        var onnx = Graft.TestSupport.TestPackages.MlNetResNet18!;
        var tpl = Graft.TestSupport.OnnxExports.File("resnet18_fresh.pt");
        var outPath = _h.PathOf("out.pt");
        var (code, stdout, stderr) = _h.Run("transfer", onnx, "--into", tpl, "--out", outPath);
        Assert.True(code == 0, stderr);
        Assert.Contains("note: matched by structure: 0 of the template's 20 layer weights matched by name", stdout);
        Assert.Contains("pair: layer2.0.downsample.0 ← Convolution", stdout);
        Assert.Contains("stage 4 block 3", stdout);
        Assert.Contains("120 copied", stdout);
        using var written = CheckpointFile.Open(outPath);
        Assert.Equal(122, written.Tensors.Count);
    }
}

/// <summary>Issue 19: a backbone.-prefixed template is matched by the graph too (its stages read through the prefix).</summary>
public sealed class BackboneTemplateTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    [MlNetAndExportsFact]
    public void Transfer_MlNetResNet18IntoBackbonePrefixedTemplate_MatchedLikeThePlainOne()
    {
        var onnx = Graft.TestSupport.TestPackages.MlNetResNet18!;
        var plain = Graft.TestSupport.OnnxExports.File("resnet18_fresh.pt");
        var wrapped = _h.PathOf("wrapped.safetensors");
        using (var r = CheckpointFile.Open(plain))
        {
            CheckpointFile.Write(wrapped, r.Tensors.Select(t =>
            {
                var bytes = new byte[t.ByteLength];
                r.ReadBytes(t, bytes);
                return TensorPayload.FromBytes("backbone." + t.Name, t.DType, t.Shape, bytes);
            }).ToList());
        }
        var (code, plainOut, stderr) = _h.Run("plan", onnx, "--into", plain, "--json");
        Assert.True(code == 0, stderr);
        var (wcode, wrappedOut, werr) = _h.Run("plan", onnx, "--into", wrapped, "--json");
        Assert.True(wcode == 0, werr);
        using var p = System.Text.Json.JsonDocument.Parse(plainOut);
        using var w = System.Text.Json.JsonDocument.Parse(wrappedOut);
        static List<string> Pairs(System.Text.Json.JsonDocument d) => d.RootElement.GetProperty("targets").EnumerateArray()
            .Select(t => $"{t.GetProperty("name").GetString()!.Replace("backbone.", "", StringComparison.Ordinal)}←{(t.TryGetProperty("source", out var s) ? s.GetString() : null)}").ToList();
        Assert.Equal(Pairs(p), Pairs(w));
        Assert.Equal(120, w.RootElement.GetProperty("targets").EnumerateArray().Count(t => t.GetProperty("status").GetString() == "copied"));
    }
}

/// <summary>Needs ML.NET's ResNet-18 package and the ONNX exports' torchvision state dicts.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class MlNetAndExportsFactAttribute : FactAttribute
{
    public MlNetAndExportsFactAttribute()
    {
        if ((Graft.TestSupport.TestPackages.MlNetResNet18SkipReason ?? Graft.TestSupport.OnnxExports.SkipReason) is { } reason)
        {
            Skip = reason;
        }
    }
}
