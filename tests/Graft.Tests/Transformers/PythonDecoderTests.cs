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
    [PythonTorchDecoderFact]
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
        var (code, stdout, stderr) = OnnxExports.Run(PythonTorchDecoderFactAttribute.Required, [script, string.Join(",", tokens), .. folders.Values], TimeSpan.FromMinutes(5));
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

/// <summary>
/// A fact that needs Python with torch (Debian's python3-torch): skipped with the reason when none imports it, except in
/// CI (<c>CI=true</c>, set by <c>.ci/run</c>, which installs torch), where it runs and fails instead.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class PythonTorchDecoderFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Interpreter = new(() =>
        new[] { Environment.GetEnvironmentVariable("GRAFT_PYTHON"), "python3", "/usr/bin/python3" }.FirstOrDefault(c => !string.IsNullOrEmpty(c) && Imports(c!)));

    private const string Missing = "No Python with torch: tried $GRAFT_PYTHON, python3 and /usr/bin/python3 (`import torch` failed); " +
        "tests/fixtures/install-python-torch.sh (as root) installs Debian's python3-torch";

    private static bool InCI => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public PythonTorchDecoderFactAttribute()
    {
        if (!InCI && Interpreter.Value is null)
        {
            Skip = Missing + ". Skipped only outside CI; in CI this test fails instead.";
        }
    }

    /// <summary>The interpreter; fails the test (in CI, where it is not skipped) when there is none.</summary>
    public static string Required => Interpreter.Value ?? throw new Xunit.Sdk.XunitException(Missing + ". CI must run this check, so it fails instead of skipping.");

    private static bool Imports(string interpreter)
    {
        try
        {
            return OnnxExports.Run(interpreter, ["-c", "import torch"], TimeSpan.FromSeconds(120)).ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
