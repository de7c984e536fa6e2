using System.Text.Json;
using Graft.TestSupport;

namespace Graft.Tests.Transformers;

/// <summary>
/// The float64 <see cref="ReferenceDecoder"/> checked against a second, independent forward pass written in plain
/// PyTorch (<c>tests/fixtures/llama_reference.py</c>: its own RMSNorm, RoPE, <c>repeat_interleave</c> for GQA, causal
/// mask, SwiGLU, <c>torch.topk</c> routing), on tiny checkpoints covering GQA, Qwen2's q/k/v biases, Mixtral routing and
/// tied embeddings: the logits must agree to 1e-10 relative to the largest, so what the transformer tests prove with
/// the reference decoder rests on more than one reading of the Hugging Face definitions.
/// </summary>
public sealed class PythonDecoderTests
{
    [PythonTorchFact]
    public void ReferenceDecoder_AgreesWithPyTorch_To1e10()
    {
        using var dir = new DecoderFolder();
        var specs = new Dictionary<string, TinySpec>
        {
            ["gqa"] = new(KvHeads: 2, Layers: 2, Vocab: 97),
            ["qwen2"] = new(KvHeads: 4, Layers: 2, Vocab: 97, QkvBias: true),
            ["mixtral"] = new(KvHeads: 2, Layers: 2, Vocab: 97, Experts: 4, TopK: 2),
            ["tied"] = new(Heads: 8, KvHeads: 1, Layers: 2, Vocab: 97, Tied: true),
        };
        var folders = specs.ToDictionary(kv => kv.Key, kv => Path.GetDirectoryName(dir.Write(kv.Key, kv.Value, seed: 31))!);
        var tokens = DecoderFolder.Tokens(97, count: 9, seed: 8);
        var script = RepoPaths.Fixtures("llama_reference.py");
        var (code, stdout, stderr) = OnnxExports.Run(PythonTorch.Required("torch"), [script, string.Join(",", tokens), .. folders.Values], TimeSpan.FromMinutes(5));
        Assert.True(code == 0, $"llama_reference.py failed ({code}): {stderr}");
        using var json = JsonDocument.Parse(stdout);
        foreach (var (name, spec) in specs)
        {
            var torch = json.RootElement.GetProperty(folders[name]).EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
            var ours = DecoderFolder.Logits(Path.Combine(folders[name], "model.safetensors"), spec, tokens);
            Assert.Equal(ours.Length, torch.Length);
            double scale = ours.SelectMany(r => r).Max(Math.Abs);
            Assert.True(double.IsFinite(scale) && scale > 1e-3, $"{name}: degenerate logits (max |logit| {scale})");
            double worst = 0;
            for (int t = 0; t < ours.Length; t++)
            {
                Assert.Equal(ours[t].Length, torch[t].Length);
                for (int j = 0; j < ours[t].Length; j++)
                {
                    Assert.True(double.IsFinite(ours[t][j]) && double.IsFinite(torch[t][j]), $"{name}: logit [{t}, {j}] not finite ({ours[t][j]}, {torch[t][j]})");
                    worst = Math.Max(worst, Math.Abs(ours[t][j] - torch[t][j]));
                }
            }
            Assert.True(worst <= 1e-10 * scale, $"{name} ({spec}): the reference decoder and PyTorch differ by {worst:g3} (largest logit {scale:g3})");
        }
    }
}
