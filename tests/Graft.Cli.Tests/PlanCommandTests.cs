using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Cli.Tests;

public sealed class PlanCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private (string Source, string Template) SeedCase()
    {
        manual_seed(3);
        var src = nn.Sequential(("conv", nn.Conv2d(3, 32, 3)), ("fc", nn.Linear(32, 10)));
        var tpl = nn.Sequential(("conv", nn.Conv2d(1, 48, 5)), ("fc", nn.Linear(48, 4)));
        return (_h.Save(src, "src.safetensors"), _h.Save(tpl, "tpl.safetensors"));
    }

    [Fact]
    public void Plan_Table_ShowsStatusShapesAndReasonAndWritesNothing()
    {
        var (src, tpl) = SeedCase();
        var hashes = (CliHarness.Hash(src), CliHarness.Hash(tpl));
        var (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl);
        Assert.True(code == 0, stderr);
        Assert.Contains("conv.weight", stdout);
        Assert.Contains("adapted", stdout);
        Assert.Contains("(32, 3, 3, 3) → (48, 1, 5, 5)", stdout);
        Assert.Contains("sum over the source inputs", stdout);
        Assert.Contains("kept", stdout);
        Assert.Contains("unused source: fc.weight", stdout);
        Assert.Contains("nothing was written", stdout);
        Assert.Equal(["src.safetensors", "tpl.safetensors"], _h.Files());
        Assert.Equal(hashes, (CliHarness.Hash(src), CliHarness.Hash(tpl)));
    }

    [Fact]
    public void Plan_Table_CountsPlainCopiesOnOneLine_AndAllListsThem()
    {
        // Same stem, new head: conv.weight and conv.bias are plain copies, the head is kept.
        manual_seed(4);
        var src = _h.Save(nn.Sequential(("conv", nn.Conv2d(3, 8, 3)), ("fc", nn.Linear(8, 10))), "src.safetensors");
        var tpl = _h.Save(nn.Sequential(("conv", nn.Conv2d(3, 8, 3)), ("fc", nn.Linear(8, 4))), "tpl.safetensors");
        var (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl);
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain(" conv.weight ", stdout);
        Assert.Contains("fc.weight", stdout);
        Assert.Contains("2 tensors copied unchanged, matched by name (--all lists them).", stdout);
        Assert.Contains("4 target tensors: 2 copied", stdout);

        (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl, "--all");
        Assert.True(code == 0, stderr);
        Assert.Matches(@"conv\.weight\s+copied", stdout);
        Assert.DoesNotContain("copied unchanged", stdout);
    }

    [Fact]
    public void Plan_Json_IsParseableAndMatchesWhatTransferReports()
    {
        var (src, tpl) = SeedCase();
        var (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl, "--json", "--kernel", "bilinear");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal("bilinear", root.GetProperty("policy").GetProperty("kernel").GetString());
        var targets = root.GetProperty("targets").EnumerateArray().ToList();
        var w = targets.Single(t => t.GetProperty("name").GetString() == "conv.weight");
        Assert.Equal("adapted", w.GetProperty("status").GetString());
        Assert.Equal([32L, 3, 3, 3], w.GetProperty("sourceShape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal([48L, 1, 5, 5], w.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("sum", w.GetProperty("in").GetProperty("rule").GetString());
        Assert.Equal("bilinear", w.GetProperty("kernel").GetProperty("rule").GetString());
        // The plan's JSON is the transfer's report without the output: unused sources are those used by nothing.
        Assert.Equal(["fc.weight", "fc.bias"], root.GetProperty("sources").EnumerateArray()
            .Where(e => e.GetProperty("usedBy").GetArrayLength() == 0).Select(e => e.GetProperty("name").GetString()));
        Assert.False(root.TryGetProperty("output", out _));
        Assert.False(root.GetProperty("summary").GetProperty("complete").GetBoolean());
        Assert.NotEmpty(root.GetProperty("strictViolations").EnumerateArray());
        Assert.Equal(["src.safetensors", "tpl.safetensors"], _h.Files());

        // The same command line given to transfer reports the same statuses.
        var (tcode, tout, _) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--json", "--kernel", "bilinear");
        Assert.Equal(0, tcode);
        using var report = JsonDocument.Parse(tout);
        Assert.Equal(
            targets.Select(t => (t.GetProperty("name").GetString(), t.GetProperty("status").GetString())),
            report.RootElement.GetProperty("targets").EnumerateArray().Select(t => (t.GetProperty("name").GetString(), t.GetProperty("status").GetString())));
    }

    private static List<(string?, string?, string?, string)> Entries(JsonElement root) => root.GetProperty("targets").EnumerateArray()
        .Select(t => (t.GetProperty("name").GetString(), t.GetProperty("status").GetString(), t.TryGetProperty("source", out var s) ? s.GetString() : null,
            string.Join(" ", t.GetProperty("steps").EnumerateArray().Select(x => x.GetProperty("op").GetString() + ":" + x.GetProperty("detail").GetString()))))
        .ToList();

    [Fact]
    public void Plan_Json_HasTheStepsTransferReports()
    {
        var (src, tpl) = SeedCase();
        var (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl, "--json", "--out-shrink", "largest-l2", "--new-channels", "kaiming");
        Assert.True(code == 0, stderr);
        using var plan = JsonDocument.Parse(stdout);
        var w = plan.RootElement.GetProperty("targets").EnumerateArray().Single(t => t.GetProperty("name").GetString() == "conv.weight");
        Assert.Equal(["in.sum", "kernel.fit", "out.pad"], w.GetProperty("steps").EnumerateArray().Select(x => x.GetProperty("op").GetString()));

        var (tcode, tout, terr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--json", "--out-shrink", "largest-l2", "--new-channels", "kaiming");
        Assert.True(tcode == 0, terr);
        using var report = JsonDocument.Parse(tout);
        Assert.Equal(Entries(plan.RootElement), Entries(report.RootElement));
    }

    /// <summary>A U16 source tensor and an F32 template tensor of the same shape: TorchSharp cannot hold U16.</summary>
    private (string Source, string Template) U16Case()
    {
        var src = _h.PathOf("src.safetensors");
        var tpl = _h.PathOf("tpl.safetensors");
        Graft.Checkpoints.CheckpointFile.Write(src, [Graft.Checkpoints.TensorPayload.FromBytes("w", Graft.Checkpoints.DType.U16, new Graft.Checkpoints.Shape(2), new byte[4])]);
        Graft.Checkpoints.CheckpointFile.Write(tpl, [Graft.Checkpoints.TensorPayload.FromBytes("w", Graft.Checkpoints.DType.F32, new Graft.Checkpoints.Shape(2), new byte[8])]);
        return (src, tpl);
    }

    [Fact]
    public void Plan_U16IntoF32_PlanAndTransferBothKeepTheTemplate()
    {
        var (src, tpl) = U16Case();
        var (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl, "--json");
        Assert.True(code == 0, stderr);
        using var plan = JsonDocument.Parse(stdout);
        var w = plan.RootElement.GetProperty("targets").EnumerateArray().Single();
        Assert.Equal("kept", w.GetProperty("status").GetString());
        Assert.Contains("TorchSharp cannot hold U16", w.GetProperty("reason").GetString());

        var (tcode, tout, terr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--json");
        Assert.True(tcode == 0, terr);
        using var report = JsonDocument.Parse(tout);
        Assert.Equal(Entries(plan.RootElement), Entries(report.RootElement));
    }

    [Fact]
    public void Plan_U16IntoF32Strict_PlanAndTransferBothExit5()
    {
        var (src, tpl) = U16Case();
        var (code, _, _) = _h.Run("plan", src, "--into", tpl, "--strict");
        var (tcode, _, terr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--strict");
        Assert.Equal(5, code);
        Assert.Equal(5, tcode);
        Assert.Contains("U16", terr);
        Assert.Equal(["src.safetensors", "tpl.safetensors"], _h.Files());
    }

    [Fact]
    public void Plan_StrictWhenIncomplete_Exit5AfterShowingThePlan()
    {
        var (src, tpl) = SeedCase();
        var (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl, "--strict");
        Assert.Equal(5, code);
        Assert.Contains("conv.weight", stdout);
        Assert.Contains("--strict", stderr);
        Assert.Equal(["src.safetensors", "tpl.safetensors"], _h.Files());
    }

    [Fact]
    public void Plan_BadPolicyWord_Exit2()
    {
        var (src, tpl) = SeedCase();
        var (code, _, stderr) = _h.Run("plan", src, "--into", tpl, "--kernel", "stretch");
        Assert.Equal(2, code);
        Assert.Contains("stretch", stderr);
    }

    [Fact]
    public void Plan_MissingInto_Exit64()
    {
        var (src, _) = SeedCase();
        var (code, _, _) = _h.Run("plan", src);
        Assert.Equal(64, code);
    }

    /// <summary>Two checkpoints with one tensor whose name is 10,000 characters long.</summary>
    private (string Source, string Template) LongNameCase()
    {
        var name = new string('x', 10_000);
        var src = _h.PathOf("src.safetensors");
        var tpl = _h.PathOf("tpl.safetensors");
        var payload = Graft.Checkpoints.TensorPayload.FromBytes(name, Graft.Checkpoints.DType.F32, new Graft.Checkpoints.Shape(2), new byte[8]);
        Graft.Checkpoints.CheckpointFile.Write(src, [payload]);
        Graft.Checkpoints.CheckpointFile.Write(tpl, [payload]);
        return (src, tpl);
    }

    [Fact]
    public void Plan_SkipGlobOnLongName_Exit0()
    {
        var (src, tpl) = LongNameCase();
        var (code, _, stderr) = _h.Run("plan", src, "--into", tpl, "--skip", "*x*x*y");
        Assert.True(code == 0, stderr);
    }

    [Fact]
    public void Plan_RenameThatTimesOut_Exit2WithOneLineNamingTheOption()
    {
        var (src, tpl) = LongNameCase();
        var (code, _, stderr) = _h.Run("plan", src, "--into", tpl, "--rename", "^(x+x+)+(?=y)=z");
        Assert.Equal(2, code);
        Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.Contains("--rename", stderr);
    }

    /// <summary>A timm-named ViT checkpoint (class token, position embedding, 16-pixel patches, head) of image size <paramref name="rows"/>×<paramref name="cols"/> patches.</summary>
    private string Vit(string name, long rows, long cols, long classes)
    {
        manual_seed(rows * 100 + cols);
        var tensors = new (string, Tensor)[]
        {
            ("cls_token", randn(1, 1, 8)), ("pos_embed", randn(1, 1 + (rows * cols), 8)),
            ("patch_embed.proj.weight", randn(8, 3, 16, 16)), ("patch_embed.proj.bias", randn(8)),
            ("head.weight", randn(classes, 8)), ("head.bias", randn(classes)),
        };
        var path = _h.PathOf(name);
        Graft.Checkpoints.CheckpointFile.Write(path, tensors.Select(t => TensorBridge.ToPayload(t.Item1, t.Item2)));
        return path;
    }

    [Fact]
    public void Plan_VitAtAnotherImageSize_ShowsTheGridChange()
    {
        var src = Vit("vit224.safetensors", 14, 14, 1000);
        var tpl = Vit("vit384.safetensors", 24, 24, 10);
        var (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl);
        Assert.True(code == 0, stderr);
        Assert.Contains("pos: 14×14 → 24×24, 1 prefix token kept", stdout);

        // A non-square target needs its image size (or a grid rule); the patch size comes from the template.
        var wide = Vit("vit192x256.safetensors", 12, 16, 10);
        (code, stdout, stderr) = _h.Run("plan", src, "--into", wide, "--image-size", "192x256");
        Assert.True(code == 0, stderr);
        Assert.Contains("pos: 14×14 → 12×16", stdout);
        // Not a whole number of patches: the grid cannot come from it, and the plan says what to declare.
        (code, stdout, _) = _h.Run("plan", src, "--into", wide, "--image-size", "19x2");
        Assert.Equal(0, code);
        Assert.Contains("--image-size 19x2 with 16-pixel patches is not a whole number of patches, but the target's position embedding holds 192 grid tokens", stdout);
        // An image size that does not match the template: say so, and which size would (576 tokens are a square grid).
        (code, stdout, _) = _h.Run("plan", src, "--into", tpl, "--image-size", "224", "--json");
        Assert.Equal(0, code);
        Assert.Contains("--image-size 224x224 with 16-pixel patches gives a 14×14 grid (196 tokens), but the target's position embedding holds 576 grid tokens (24×24); give the template's image size (--image-size 384x384)", stdout);
        Assert.DoesNotContain("not a square grid", stdout);
        (code, _, stderr) = _h.Run("plan", src, "--into", wide, "--image-size", "wide");
        Assert.Equal(2, code);
        Assert.Contains("--image-size", stderr);
    }
}
