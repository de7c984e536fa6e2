using Graft.Growth;
using Graft.Transfer;

namespace Graft.Tests.Transformers;

/// <summary>
/// A temporary folder holding tiny decoders (each its own folder with <c>config.json</c> and <c>model.safetensors</c>)
/// and the helpers the transformer tests share: transfer, load, and compare logits with a float32-derived tolerance.
/// </summary>
internal sealed class DecoderFolder : IDisposable
{
    /// <summary>float32's unit roundoff, 2⁻²⁴.</summary>
    public const double Float32Roundoff = 1.0 / (1 << 24);

    public string Root { get; } = Directory.CreateTempSubdirectory("graft-llm-").FullName;

    public string Write(string name, TinySpec spec, int seed) => spec.Write(Path.Combine(Root, name), seed);

    /// <summary>Transfers <paramref name="source"/> into <paramref name="template"/>'s architecture; under <paramref name="preserve"/> as <c>--preserve-function</c>.</summary>
    /// <param name="rules">Policy rules (<c>--rule</c>) on top of the policy <paramref name="preserve"/> chooses.</param>
    public (string Output, TransferReport Report) Transfer(string source, string template, bool preserve, string name = "out", Graft.Transformers.TransformerOptions? options = null,
        IReadOnlyList<TensorRule>? rules = null)
    {
        var folder = Path.Combine(Root, name);
        Directory.CreateDirectory(folder);
        // The output's config is the template's: the transferred checkpoint is a model of the template's architecture.
        File.Copy(Path.Combine(Path.GetDirectoryName(template)!, "config.json"), Path.Combine(folder, "config.json"), overwrite: true);
        var output = Path.Combine(folder, "model.safetensors");
        var policy = (preserve ? TransferPresets.KeepFunction : TransferPolicy.Default) with { Transformer = options, Rules = rules ?? [] };
        var report = WeightTransfer.Files(source, template, output, policy, refuse: preserve ? PreserveFunction.Problems : null);
        return (output, report);
    }

    /// <summary>Random tokens below <paramref name="vocab"/>, seeded.</summary>
    public static int[] Tokens(int vocab, int count = 7, int seed = 5)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }

    public static double[][] Logits(string checkpoint, TinySpec spec, int[] tokens) =>
        ReferenceDecoder.Logits(spec.Unfuse(TinySpec.Load(checkpoint)), spec.Heads, spec.KvHeads, spec.Layers, spec.TopK, spec.Tied, tokens);

    /// <summary>
    /// Fails unless every logit (of the first <paramref name="columns"/> of each row, all by default) is finite and within
    /// a bound derived from float32 roundoff: each weight rounded to float32 at most once (copies and halvings are exact;
    /// means are rounded once), carried through a few layers, so 64 units of roundoff of the largest logit.
    /// </summary>
    public static void AssertLogitsEqual(double[][] expected, double[][] actual, int? columns = null)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.SelectMany(r => r).Max(Math.Abs);
        Assert.True(double.IsFinite(scale) && scale > 1e-3, $"the reference logits are degenerate (max |logit| = {scale})");
        double tol = 64 * Float32Roundoff * scale;
        double worst = 0;
        for (int t = 0; t < expected.Length; t++)
        {
            int n = columns ?? expected[t].Length;
            Assert.True(columns is not null || expected[t].Length == actual[t].Length, "vocabulary sizes differ");
            for (int j = 0; j < n; j++)
            {
                double e = expected[t][j], a = actual[t][j];
                Assert.True(double.IsFinite(e) && double.IsFinite(a), $"logit [{t}, {j}] is not finite: expected {e}, actual {a}");
                worst = Math.Max(worst, Math.Abs(e - a));
            }
        }
        Assert.True(worst <= tol, $"logits differ by up to {worst:g4} (tolerance {tol:g4}, largest logit {scale:g4})");
    }

    /// <summary>The largest relative logit change, for tests that show a change is real.</summary>
    public static double MaxRelativeChange(double[][] a, double[][] b)
    {
        double scale = a.SelectMany(r => r).Max(Math.Abs);
        return a.Zip(b).SelectMany(p => p.First.Zip(p.Second, (x, y) => Math.Abs(x - y))).Max() / scale;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
