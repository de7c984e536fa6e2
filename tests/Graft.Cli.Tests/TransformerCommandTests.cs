using Graft.Tests.Transformers;

namespace Graft.Cli.Tests;

/// <summary><c>graft transfer</c> and <c>graft plan</c> on tiny Llama-style checkpoints with their <c>config.json</c> (issue 25).</summary>
public sealed class TransformerCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private (string Source, string Template) Write(TinySpec from, TinySpec to) =>
        (from.Write(_h.PathOf("src"), 1), to.Write(_h.PathOf("tpl"), 2));

    [Fact]
    public void Transfer_GqaToMha_PreserveFunction_Exit0_PlanShowsRepeatedHeads()
    {
        var small = new TinySpec(KvHeads: 2, Layers: 2, Vocab: 50);
        var (src, tpl) = Write(small, small with { KvHeads = 8 });
        var outPath = _h.PathOf("o.safetensors");
        var (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--preserve-function");
        Assert.True(code == 0, stderr);
        Assert.Contains("planned by role from config.json", stdout);
        Assert.Contains("K/V heads 2→8: each a copy of the K/V head its query heads read", stdout);
        Assert.True(File.Exists(outPath));
    }

    [Fact]
    public void Transfer_MhaToGqa_PlainPoolsAndSaysSo_PreserveFunctionExit5()
    {
        var small = new TinySpec(Layers: 2, Vocab: 50);
        var (src, tpl) = Write(small, small with { KvHeads = 2 });
        var (code, stdout, stderr) = _h.Run("plan", src, "--into", tpl);
        Assert.True(code == 0, stderr);
        Assert.Contains("each the mean of its group's 4 heads", stdout);
        var outPath = _h.PathOf("o.safetensors");
        (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--preserve-function");
        Assert.True(code == 5, $"exit {code}: {stderr}");
        Assert.Contains("K/V heads 8→2 by group means", stderr);
        Assert.False(File.Exists(outPath));
    }

    [Fact]
    public void Transfer_UnknownDecoderFamily_Exit4NamesConfigAndModelType()
    {
        var small = new TinySpec(Layers: 1, Vocab: 50);
        var (src, tpl) = Write(small, small);
        var config = Path.Combine(_h.PathOf("tpl"), "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"llama\"", "\"gemma\"", StringComparison.Ordinal).Replace("LlamaForCausalLM", "GemmaForCausalLM", StringComparison.Ordinal));
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"));
        Assert.True(code == 4, $"exit {code}: {stderr}");
        Assert.Contains(config, stderr);
        Assert.Contains("model_type 'gemma'", stderr);
        Assert.Contains("GemmaForCausalLM", stderr);
    }
}
