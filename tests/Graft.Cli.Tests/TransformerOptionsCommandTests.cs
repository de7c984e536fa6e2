using Graft.Tests.Transformers;

namespace Graft.Cli.Tests;

/// <summary><c>--layers</c> and <c>--clone-noise</c> of <c>graft plan</c> / <c>graft transfer</c> on tiny decoders: syntax errors and exit codes.</summary>
public sealed class TransformerOptionsCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private static readonly TinySpec Small = new(Layers: 4, Vocab: 50);

    private (string Source, string Template) Write(TinySpec from, TinySpec to) =>
        (from.Write(_h.PathOf("src"), 1), to.Write(_h.PathOf("tpl"), 2));

    [Theory]
    [InlineData("0-3,x,4", "'x'")]
    [InlineData("0-3,5-4", "'5-4' runs backwards")]
    [InlineData("0-3,3=copy", "'3=copy'")]
    [InlineData("0-3,,4", "empty token")]
    public void Layers_BadToken_Exit2NamesIt(string map, string expected)
    {
        var (src, tpl) = Write(Small, Small with { Layers = 5 });
        var outPath = _h.PathOf("o.safetensors");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--layers", map);
        Assert.True(code == 2, $"exit {code}: {stderr}");
        Assert.Contains("--layers", stderr);
        Assert.Contains(expected, stderr);
        Assert.False(File.Exists(outPath));
    }

    [Fact]
    public void Layers_SourceBlockOutOfRange_Exit2NamesToken()
    {
        var (src, tpl) = Write(Small, Small with { Layers = 5 });
        var (code, _, stderr) = _h.Run("plan", src, "--into", tpl, "--layers", "0-4");
        Assert.True(code == 2, $"exit {code}: {stderr}");
        Assert.Contains("token '0-4' names source block 4", stderr);
    }

    [Fact]
    public void Layers_Solar_PlainWorks_PreserveFunctionExit5WithReason()
    {
        var (src, tpl) = Write(Small, Small with { Layers = 6 });
        var (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl, "--layers", "0-2,1-3");
        Assert.True(code == 0, stderr);
        Assert.Contains("target 0–2 ← source 0–2; 3–5 ← source 1–3", stdout);
        var outPath = _h.PathOf("o.safetensors");
        (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--layers", "0-2,1-3", "--preserve-function");
        Assert.True(code == 5, $"exit {code}: {stderr}");
        Assert.Contains("applied more than once", stderr);
        Assert.False(File.Exists(outPath));
    }

    [Fact]
    public void Layers_IdentityBlock_PreserveFunction_Exit0()
    {
        var (src, tpl) = Write(Small, Small with { Layers = 5 });
        var outPath = _h.PathOf("o.safetensors");
        var (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--layers", "0-3,3=id", "--preserve-function");
        Assert.True(code == 0, stderr);
        Assert.Contains("4 identity from source 3", stdout);
        Assert.True(File.Exists(outPath));
        // The JSON plan carries the map in its policy.
        (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl, "--layers", "0-3,3=id", "--json");
        Assert.True(code == 0, stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        Assert.Equal("0-3,3=id", doc.RootElement.GetProperty("policy").GetProperty("transformer").GetProperty("layers").GetProperty("text").GetString());
    }

    [Fact]
    public void Layers_WithoutConfig_Exit2()
    {
        var (src, tpl) = Write(Small, Small);
        File.Delete(Path.Combine(_h.PathOf("src"), "config.json"));
        var (code, _, stderr) = _h.Run("plan", src, "--into", tpl, "--layers", "0-3");
        Assert.True(code == 2, $"exit {code}: {stderr}");
        Assert.Contains("config.json", stderr);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-1e-3")]
    [InlineData("NaN")]
    public void CloneNoise_NotANonNegativeNumber_Exit2(string value)
    {
        var (src, tpl) = Write(Small, Small with { Hidden = 128, Heads = 16, KvHeads = 16 });
        var (code, _, stderr) = _h.Run("plan", src, "--into", tpl, "--clone-noise", value);
        Assert.True(code == 2, $"exit {code}: {stderr}");
        Assert.Contains("--clone-noise", stderr);
        Assert.Contains(value, stderr);
    }

    [Fact]
    public void CloneNoise_Width_PreserveFunction_Exit0_PlanSaysNotExact()
    {
        var (src, tpl) = Write(Small with { Layers = 1 }, Small with { Layers = 1, Hidden = 128, Heads = 16, KvHeads = 16, Intermediate = 256 });
        var outPath = _h.PathOf("o.safetensors");
        var (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--preserve-function", "--clone-noise", "1e-3", "--seed", "7");
        Assert.True(code == 0, stderr);
        Assert.Contains("clone noise 0.001", stdout);
        Assert.Contains("copies are no longer exact", stdout);
    }
}
