using Graft.Transformers;

namespace Graft.Tests.Transformers;

/// <summary>
/// HyperCloning's symmetric noise (issue 25): widened copies get +N and −N so a layer reading equal copies sums to the
/// same value. Checked with the reference decoder: the logits stay within the float32 tolerance, and the copies differ.
/// </summary>
public sealed class CloneNoiseTests : IDisposable
{
    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly TinySpec Small = new(Layers: 2, Vocab: 300, KvHeads: 2);
    private static readonly TinySpec Wide = Small with { Hidden = 128, Heads = 16, KvHeads = 4, Intermediate = 256 };

    [Fact]
    public void Width_CloneNoise_PreserveFunction_LogitsEqual_CopiesDiffer_SumsKept()
    {
        var src = _dir.Write("src", Small, 41);
        var tpl = _dir.Write("tpl", Wide, 42);
        var (output, report) = _dir.Transfer(src, tpl, preserve: true, options: new TransformerOptions { CloneNoise = 1e-3 });
        var tokens = DecoderFolder.Tokens(Small.Vocab);
        DecoderFolder.AssertLogitsEqual(DecoderFolder.Logits(src, Small, tokens), DecoderFolder.Logits(output, Wide, tokens));

        var (s, o) = (TinySpec.Load(src), TinySpec.Load(output));
        // gate_proj (256, 128) from (128, 64): copies of input c at columns c and c + 64, of unit r at rows r and r + 128.
        var (a, b) = (s["model.layers.1.mlp.gate_proj.weight"], o["model.layers.1.mlp.gate_proj.weight"]);
        double std = Std(a.Data) / 2, worstSum = 0, noise = 0;
        int differ = 0;
        for (int r = 0; r < 256; r++)
        {
            for (int c = 0; c < 64; c++)
            {
                // The copies of one input sum to the source weight (to rounding): the function is kept.
                worstSum = Math.Max(worstSum, Math.Abs(b[r, c] + b[r, c + 64] - a[r % 128, c]));
                noise = Math.Max(noise, Math.Abs(b[r, c] - a[r % 128, c] / 2));
                differ += b[r, c] != b[r, c + 64] ? 1 : 0;
            }
        }
        Assert.True(worstSum <= 4 * DecoderFolder.Float32Roundoff * a.Data.Max(Math.Abs), $"copies sum off by {worstSum}");
        Assert.True(differ > 256 * 64 * 9 / 10, $"only {differ} of {256 * 64} input copies differ");
        // The noise is of the size asked: about 1e-3 of the weight's std (the largest of 16,384 Gaussian draws ≈ 4.5 std).
        Assert.InRange(noise / std, 1e-3, 1e-2);
        // The two copies of an intermediate unit (rows r and r + 128) differ too: they no longer get identical gradients.
        Assert.NotEqual(b.Data.AsSpan(0, 128).ToArray(), b.Data.AsSpan(128 * 128, 128).ToArray());

        var gate = report.Targets.Single(t => t.Name == "model.layers.1.mlp.gate_proj.weight");
        Assert.Contains(gate.Steps, step => step.Op == "noise.cancelling" && step.Detail.Contains("no longer exact", StringComparison.Ordinal));
        Assert.Contains(report.Notes, n => n.Contains("clone noise 0.001", StringComparison.Ordinal));
        // Embeddings and norms are copies nothing reads twice: no noise there.
        Assert.DoesNotContain(report.Targets.Single(t => t.Name == "model.embed_tokens.weight").Steps, step => step.Op == "noise.cancelling");
    }

    [Fact]
    public void CloneNoise_SameSeed_SameWeights_OtherSeed_Others()
    {
        var src = _dir.Write("src", Small with { Layers = 1 }, 41);
        var tpl = _dir.Write("tpl", Wide with { Layers = 1 }, 42);
        var options = new TransformerOptions { CloneNoise = 1e-2 };
        var (o1, _) = _dir.Transfer(src, tpl, preserve: false, name: "a", options: options);
        var (o2, _) = _dir.Transfer(src, tpl, preserve: false, name: "b", options: options);
        const string Name = "model.layers.0.self_attn.o_proj.weight";
        Assert.Equal(TinySpec.Load(o1)[Name].Data, TinySpec.Load(o2)[Name].Data);
        Assert.NotEqual(TinySpec.Load(o1)[Name].Data, TinySpec.Load(o1)["model.layers.0.mlp.down_proj.weight"].Data.AsSpan(0, 128 * 128).ToArray());
    }

    private static double Std(double[] x)
    {
        double mean = x.Average();
        return Math.Sqrt(x.Sum(v => (v - mean) * (v - mean)) / x.Length);
    }
}
