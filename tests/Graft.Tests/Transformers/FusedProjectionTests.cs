using Graft.Transfer;

namespace Graft.Tests.Transformers;

/// <summary>
/// Phi-3's fused <c>qkv_proj</c> and <c>gate_up_proj</c> split and joined (issue 25): the reference decoder reads the
/// fused weights through <see cref="TinySpec.Unfuse"/> (cut by the test from the config's numbers), so logits before and
/// after are compared whatever side is fused.
/// </summary>
public sealed class FusedProjectionTests : IDisposable
{
    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly TinySpec Small = new(Layers: 2, Vocab: 300);

    private (string Source, string Output, TransferReport Report) AssertKeepsLogits(TinySpec origin, TinySpec to)
    {
        var src = _dir.Write("src", origin, seed: 21);
        var tpl = _dir.Write("tpl", to, seed: 22);
        var (output, report) = _dir.Transfer(src, tpl, preserve: true);
        var tokens = DecoderFolder.Tokens(origin.Vocab);
        DecoderFolder.AssertLogitsEqual(DecoderFolder.Logits(src, origin, tokens), DecoderFolder.Logits(output, to, tokens));
        return (src, output, report);
    }

    private static IEnumerable<string> Ops(TransferReport report, string name) => report.Targets.Single(t => t.Name == name).Steps.Select(s => s.Op);

    [Fact]
    public void FusedToUnfused_PreserveFunction_LogitsEqual_PlanSplits()
    {
        var (src, output, report) = AssertKeepsLogits(Small with { Fused = true }, Small);
        Assert.Contains("split", Ops(report, "model.layers.1.self_attn.k_proj.weight"));
        Assert.Contains("split", Ops(report, "model.layers.1.mlp.up_proj.weight"));
        // The parts are the fused rows as they are: v is rows 128–191 of qkv_proj (8 heads of 8 for q, 8 for k).
        var (s, o) = (TinySpec.Load(src), TinySpec.Load(output));
        Assert.Equal(s["model.layers.0.self_attn.qkv_proj.weight"].Data.AsSpan(128 * 64, 64 * 64).ToArray(), o["model.layers.0.self_attn.v_proj.weight"].Data);
        Assert.Equal(s["model.layers.0.mlp.gate_up_proj.weight"].Data.AsSpan(128 * 64, 128 * 64).ToArray(), o["model.layers.0.mlp.up_proj.weight"].Data);
        Assert.DoesNotContain(report.Sources, x => x.UsedBy.Count == 0);
    }

    [Fact]
    public void UnfusedToFused_PreserveFunction_LogitsEqual_PlanConcatenates()
    {
        var (_, output, report) = AssertKeepsLogits(Small, Small with { Fused = true });
        var qkv = report.Targets.Single(t => t.Name == "model.layers.0.self_attn.qkv_proj.weight");
        Assert.Equal(["concat"], qkv.Steps.Select(s => s.Op));
        Assert.Contains("joined from the unfused q, k, v", qkv.Reason);
        Assert.DoesNotContain(TinySpec.Load(output).Keys, k => k.Contains("q_proj", StringComparison.Ordinal));
        // The stacked q, k and v are each reported as used by the fused target.
        Assert.Contains("model.layers.0.self_attn.qkv_proj.weight", report.Sources.Single(x => x.Name == "model.layers.0.self_attn.v_proj.weight").UsedBy);
        Assert.DoesNotContain(report.Sources, x => x.UsedBy.Count == 0);
    }

    /// <summary>GQA (2 KV heads) fused → MHA fused, ×2 wider: each part gets its unfused role's map (K/V repeated, HyperCloning).</summary>
    [Fact]
    public void FusedToFused_GqaToMha_AndWidth_PreserveFunction_LogitsEqual()
    {
        var origin = Small with { Fused = true, KvHeads = 2 };
        var (_, _, report) = AssertKeepsLogits(origin, origin with { Hidden = 128, Heads = 16, KvHeads = 16, Intermediate = 256 });
        var step = report.Targets.Single(t => t.Name == "model.layers.1.self_attn.qkv_proj.weight").Steps.Single();
        Assert.Equal("concat", step.Op);
        Assert.Contains("repeat_kv", step.Detail);
        Assert.Contains("HyperCloning", step.Detail);
    }

    [Fact]
    public void FusedDepth_4To6_PreserveFunction_LogitsEqual_IdentityBlockKeepsFusedInputs()
    {
        var origin = new TinySpec(Vocab: 300, Fused: true);
        var (_, output, _) = AssertKeepsLogits(origin, origin with { Layers = 6 });
        var o = TinySpec.Load(output);
        Assert.All(o["model.layers.2.mlp.down_proj.weight"].Data, v => Assert.Equal(0.0, v));
        Assert.Equal(o["model.layers.1.mlp.gate_up_proj.weight"].Data, o["model.layers.2.mlp.gate_up_proj.weight"].Data);
        Assert.Contains(o["model.layers.2.self_attn.qkv_proj.weight"].Data, v => v != 0);
    }

    /// <summary>Fused MHA → fused GQA: the k and v parts are group means (the plan says so) and --preserve-function refuses.</summary>
    [Fact]
    public void FusedMhaToFusedGqa_KPartIsGroupMean_PreserveFunctionRefuses()
    {
        var origin = Small with { Fused = true };
        var to = origin with { KvHeads = 2 };
        var src = _dir.Write("src", origin, seed: 21);
        var tpl = _dir.Write("tpl", to, seed: 22);
        var (output, _) = _dir.Transfer(src, tpl, preserve: false);
        var a = origin.Unfuse(TinySpec.Load(src))["model.layers.0.self_attn.k_proj.weight"];
        var b = to.Unfuse(TinySpec.Load(output))["model.layers.0.self_attn.k_proj.weight"];
        int hd = TinySpec.HeadDim;
        double scale = a.Data.Max(Math.Abs);
        for (int g = 0; g < 2; g++)
        {
            for (int r = 0; r < hd; r++)
            {
                for (int c = 0; c < 64; c++)
                {
                    double mean = Enumerable.Range(g * 4, 4).Average(h => a[h * hd + r, c]);
                    Assert.True(double.IsFinite(b[g * hd + r, c]) && Math.Abs(b[g * hd + r, c] - mean) <= 4 * DecoderFolder.Float32Roundoff * scale, $"[{g * hd + r}, {c}]");
                }
            }
        }
        var e = Assert.Throws<TransferStrictException>(() => _dir.Transfer(src, tpl, preserve: true, name: "refused"));
        Assert.Contains(e.Violations, v => v.Contains("group means", StringComparison.Ordinal));
    }
}
