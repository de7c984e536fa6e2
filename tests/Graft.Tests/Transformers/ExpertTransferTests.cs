using Graft.Growth;
using Graft.Transfer;

namespace Graft.Tests.Transformers;

/// <summary>
/// Mixtral experts of another count, and a mixture made dense (issue 25), checked with the float64
/// <see cref="ReferenceDecoder"/>: where the plan claims the function is kept the logits agree within float32 roundoff;
/// where it says the function changes, the decoder measures a change, and the output is what the plan says it is.
/// </summary>
public sealed class ExpertTransferTests : IDisposable
{
    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A small Mixtral: 4 experts top-2, GQA, 2 layers, so routing differs per token.</summary>
    private static readonly TinySpec Moe = new(KvHeads: 2, Layers: 2, Vocab: 200, Experts: 4, TopK: 2);

    private (string Source, string Output, TransferReport Report) Run(TinySpec from, TinySpec to, bool preserve)
    {
        var src = _dir.Write("src", from, seed: 21);
        var tpl = _dir.Write("tpl", to, seed: 22);
        var (output, report) = _dir.Transfer(src, tpl, preserve);
        return (src, output, report);
    }

    private string Template => Path.Combine(_dir.Root, "tpl", "model.safetensors");

    private static string Expert(int layer, int e, string w) => $"model.layers.{layer}.block_sparse_moe.experts.{e}.{w}.weight";

    private static string Router(int layer) => $"model.layers.{layer}.block_sparse_moe.gate.weight";

    /// <summary>Rows <paramref name="row"/> of a (rows, cols) tensor.</summary>
    private static double[] Row(Tensor64 t, int row) => t.Data.AsSpan(row * (int)t.Shape[1], (int)t.Shape[1]).ToArray();

    [Theory]
    [InlineData(2, 4)] // E → 2E with top-k → 2k: the two copies of each of the top k experts, renormalised
    [InlineData(1, 1)] // top-1 stays top-1: one copy of the best expert, weight 1
    [InlineData(1, 2)] // top-1 → top-2: both copies of the best expert
    public void Experts_4To8_PreserveFunction_LogitsEqual_CopiesWithTheirRouterRows(int fromTopK, int toTopK)
    {
        var from = Moe with { TopK = fromTopK };
        var to = Moe with { Experts = 8, TopK = toTopK };
        var (src, output, report) = Run(from, to, preserve: true);
        var tokens = DecoderFolder.Tokens(Moe.Vocab);
        DecoderFolder.AssertLogitsEqual(DecoderFolder.Logits(src, from, tokens), DecoderFolder.Logits(output, to, tokens));
        var (s, o) = (TinySpec.Load(src), TinySpec.Load(output));
        for (int e = 0; e < 8; e++)
        {
            Assert.Equal(s[Expert(1, e % 4, "w2")].Data, o[Expert(1, e, "w2")].Data);
            Assert.Equal(Row(s[Router(1)], e % 4), Row(o[Router(1)], e));
        }
        Assert.Contains(report.Notes, n => n.Contains("experts 4→8", StringComparison.Ordinal) && n.Contains("2 copies of each expert", StringComparison.Ordinal));
    }

    /// <summary>
    /// E → 2E keeping top-2: the plan says the mixture changes (copies of the best expert take both slots) and
    /// <c>--preserve-function</c> refuses; the decoder confirms the change, and that it is exactly that: the output equals
    /// the source model routed top-1 (both slots to the copies of the best expert).
    /// </summary>
    [Fact]
    public void Experts_4To8_Top2Kept_PlanSaysNotExact_DecoderMeasuresTop1Routing()
    {
        var to = Moe with { Experts = 8 };
        var (src, output, _) = Run(Moe, to, preserve: false);
        var tokens = DecoderFolder.Tokens(Moe.Vocab);
        var before = DecoderFolder.Logits(src, Moe, tokens);
        var after = DecoderFolder.Logits(output, to, tokens);
        Assert.True(DecoderFolder.MaxRelativeChange(before, after) > 1e-3, "the plan says the logits change, and they must");
        DecoderFolder.AssertLogitsEqual(DecoderFolder.Logits(src, Moe with { TopK = 1 }, tokens), after);
        var e = Assert.Throws<TransferStrictException>(() => _dir.Transfer(src, Template, preserve: true, name: "refused"));
        Assert.Contains(e.Violations, v => v.Contains("exact only with num_experts_per_tok 4", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(_dir.Root, "refused", "model.safetensors")));
    }

    /// <summary>Fewer experts: the first kept with their router rows; not exact, and refused under --preserve-function.</summary>
    [Fact]
    public void Experts_4To2_FirstKept_PlanSaysNotExact_DecoderAgrees()
    {
        var to = Moe with { Experts = 2, TopK = 2 };
        var (src, output, report) = Run(Moe, to, preserve: false);
        var (s, o) = (TinySpec.Load(src), TinySpec.Load(output));
        Assert.Equal([2L, Moe.Hidden], o[Router(0)].Shape);
        Assert.Equal(s[Router(0)].Data.AsSpan(0, 2 * Moe.Hidden).ToArray(), o[Router(0)].Data);
        Assert.Equal(s[Expert(0, 1, "w1")].Data, o[Expert(0, 1, "w1")].Data);
        var tokens = DecoderFolder.Tokens(Moe.Vocab);
        Assert.True(DecoderFolder.MaxRelativeChange(DecoderFolder.Logits(src, Moe, tokens), DecoderFolder.Logits(output, to, tokens)) > 1e-3);
        Assert.Contains(report.Notes, n => n.Contains("experts 4→2", StringComparison.Ordinal));
        var e = Assert.Throws<TransferStrictException>(() => _dir.Transfer(src, Template, preserve: true, name: "refused"));
        Assert.Contains(e.Violations, v => v.Contains("only the first 2 experts kept", StringComparison.Ordinal));
        // The dropped experts are said once, not as one "source tensor not used" line each.
        Assert.DoesNotContain(e.Violations, v => v.Contains("not used", StringComparison.Ordinal));
    }

    [Fact]
    public void Experts_SameCountOtherTopK_RefusedUnderPreserveFunction()
    {
        var e = Assert.Throws<TransferStrictException>(() => Run(Moe, Moe with { TopK = 1 }, preserve: true));
        Assert.Contains(e.Violations, v => v.Contains("num_experts_per_tok 2→1", StringComparison.Ordinal));
    }

    [Fact]
    public void Experts_4To6_NotWhole_Refused()
    {
        var e = Assert.Throws<TransferPlanException>(() => Run(Moe, Moe with { Experts = 6 }, preserve: false));
        Assert.Contains("experts 4→6", e.Message, StringComparison.Ordinal);
        Assert.Contains("multiple of 4", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Mixtral → dense: the MLP is expert 0's. The decoder measures the change the plan announces, and the output is
    /// exactly the source with every mixture replaced by expert 0 at full weight.
    /// </summary>
    [Fact]
    public void MoeToDense_MlpIsExpertZero_PlanSaysNotExact_DecoderAgrees()
    {
        var dense = Moe with { Experts = 0, TopK = 0 };
        var (src, output, report) = Run(Moe, dense, preserve: false);
        var (s, o) = (TinySpec.Load(src), TinySpec.Load(output));
        var expertZero = new Dictionary<string, Tensor64>(s.Where(kv => !kv.Key.Contains("block_sparse_moe", StringComparison.Ordinal)));
        for (int l = 0; l < Moe.Layers; l++)
        {
            foreach (var (mlp, w) in new[] { ("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2") })
            {
                var name = $"model.layers.{l}.mlp.{mlp}.weight";
                Assert.Equal(s[Expert(l, 0, w)].Data, o[name].Data);
                expertZero[name] = s[Expert(l, 0, w)];
            }
        }
        var tokens = DecoderFolder.Tokens(Moe.Vocab);
        var after = DecoderFolder.Logits(output, dense, tokens);
        Assert.True(DecoderFolder.MaxRelativeChange(DecoderFolder.Logits(src, Moe, tokens), after) > 1e-3, "the plan says the logits change, and they must");
        DecoderFolder.AssertLogitsEqual(ReferenceDecoder.Logits(expertZero, dense.Heads, dense.KvHeads, dense.Layers, 0, false, tokens), after);
        Assert.Contains(report.Notes, n => n.Contains("expert 0's w1, w3, w2", StringComparison.Ordinal));
        var e = Assert.Throws<TransferStrictException>(() => _dir.Transfer(src, Template, preserve: true, name: "refused"));
        Assert.Contains(e.Violations, v => v.Contains("experts → dense MLP", StringComparison.Ordinal));
        Assert.DoesNotContain(e.Violations, v => v.Contains("not used", StringComparison.Ordinal));
    }
}
