using System.Text.Json;
using Graft.Tests.Transformers;

namespace Graft.Cli.Tests;

/// <summary><c>graft transfer</c> reports the logits check of a decoder planned by role (issue 25): text, JSON, and <c>--check-logits</c>.</summary>
public sealed class TransformerLogitCheckCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private (string Source, string Template) Write(TinySpec from, TinySpec to) =>
        (from.Write(_h.PathOf("src"), 1), to.Write(_h.PathOf("tpl"), 2));

    private static readonly TinySpec Small = new(KvHeads: 2, Layers: 2, Vocab: 50);

    [Fact]
    public void Transfer_PreserveFunction_ReportsMeasuredLogits_TextAndJson()
    {
        var (src, tpl) = Write(Small, Small with { KvHeads = 8, Layers = 3 });
        var (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--preserve-function");
        Assert.True(code == 0, stderr);
        Assert.Contains("Logits: measured on 4 sequences of 16 tokens", stdout);
        Assert.Contains("the function is kept", stdout);
        (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o2.safetensors"), "--preserve-function", "--json");
        Assert.True(code == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        var logits = json.RootElement.GetProperty("logits");
        Assert.True(logits.GetProperty("measured").GetBoolean());
        Assert.True(logits.GetProperty("claimed").GetBoolean());
        Assert.True(logits.GetProperty("passed").GetBoolean());
        double relative = logits.GetProperty("relative").GetDouble(), tolerance = logits.GetProperty("tolerance").GetDouble();
        Assert.True(double.IsFinite(relative) && relative <= tolerance && logits.GetProperty("maxAbsLogit").GetDouble() > 1e-3, stdout);
    }

    [Fact]
    public void Transfer_CheckLogitsNever_SaysNotMeasured_BadWordExit2()
    {
        var (src, tpl) = Write(Small, Small with { KvHeads = 8 });
        var (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--preserve-function", "--check-logits", "never");
        Assert.True(code == 0, stderr);
        Assert.Contains("Logits: not measured: --check-logits never", stdout);
        (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o2.safetensors"), "--check-logits", "sometimes");
        Assert.True(code == 2, $"exit {code}: {stderr}");
        Assert.Contains("--check-logits", stderr);
        Assert.False(File.Exists(_h.PathOf("o2.safetensors")));
    }

    /// <summary>More experts with top-k unchanged: --preserve-function refuses (exit 5) saying which top-k would be exact; top-2 → 4 passes, measured.</summary>
    [Fact]
    public void Transfer_Experts4To8_Top2Refused_Top4MeasuredAndKept()
    {
        var moe = Small with { Experts = 4, TopK = 2 };
        var (src, tpl) = Write(moe, moe with { Experts = 8 });
        var outPath = _h.PathOf("o.safetensors");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--preserve-function");
        Assert.True(code == 5, $"exit {code}: {stderr}");
        Assert.Contains("exact only with num_experts_per_tok 4", stderr);
        Assert.False(File.Exists(outPath));
        var top4 = (moe with { Experts = 8, TopK = 4 }).Write(_h.PathOf("tpl4"), 3);
        (code, var stdout, stderr) = _h.Run("transfer", src, "--into", top4, "--out", outPath, "--preserve-function");
        Assert.True(code == 0, stderr);
        Assert.Contains("experts 4→8 (top-2→4): 2 copies of each expert", stdout);
        Assert.Contains("the function is kept", stdout);
    }

    /// <summary>A plan that does not keep the function (MHA → GQA) is measured on request and reported, exit 0.</summary>
    [Fact]
    public void Transfer_NotExact_CheckLogitsAlways_ReportsTheChange()
    {
        var mha = Small with { KvHeads = 8 };
        var (src, tpl) = Write(mha, Small);
        var (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--check-logits", "always");
        Assert.True(code == 0, stderr);
        Assert.Contains("(the plan does not claim the function is kept)", stdout);
    }
}
