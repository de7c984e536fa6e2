using System.Text.Json.Nodes;
using CsCheck;
using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Tests.Transfer;

/// <summary>
/// Issue 20, item 2: <c>plan</c> and <c>transfer</c> say the same thing in words too. For random (source, template)
/// pairs of conv, BatchNorm and linear layers of random widths, kernels and class counts, under random policies and
/// rules, the plan's report and the transfer's report have the same summary, the same verdict sentence and the same
/// JSON, apart from the output and what only running measures (largest-norm channel indices).
/// </summary>
public sealed class PlanReportAgreesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("graft-plan-report-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private sealed record Layer(int Kind, long Out, long In, long K, long TOut, long TIn, long TK, bool Present);

    private sealed record Case(IReadOnlyList<Layer> Layers, OutShrinkRule Shrink, NewChannelRule Fresh, KernelRule Kernel, int Rule, bool Extra);

    private static Gen<T> Pick<T>(params T[] values) => Gen.Int[0, values.Length - 1].Select(i => values[i]);

    private static readonly Gen<Layer> GenLayer = Gen.Select(
            Gen.Select(Gen.Int[0, 2], Gen.Long[1, 4], Gen.Long[1, 3], Pick(1L, 3L)),
            Gen.Select(Gen.Long[1, 4], Gen.Long[1, 3], Pick(1L, 3L, 5L), Gen.Int[0, 9]))
        .Select((a, b) => new Layer(a.Item1, a.Item2 * 2, a.Item3, a.Item4, b.Item1 * 2, b.Item2, b.Item3, b.Item4 != 0));

    private static readonly Gen<Case> GenCase = Gen.Select(
        GenLayer.List[1, 4],
        Pick(OutShrinkRule.First, OutShrinkRule.LargestL2),
        Pick(NewChannelRule.Template, NewChannelRule.Zeros, NewChannelRule.Copies),
        Pick(KernelRule.Fit, KernelRule.Bilinear, KernelRule.Reinit),
        Gen.Int[0, 5], Gen.Bool)
        .Select((layers, shrink, fresh, kernel, rule, extra) => new Case(layers, shrink, fresh, kernel, rule, extra));

    private static TensorPayload P(string name, params long[] shape)
    {
        var sh = new Shape(shape);
        var bytes = new byte[sh.ElementCount * 4];
        // Distinct values (largest-norm rankings have something to rank), all finite.
        for (int i = 0; i < sh.ElementCount; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), (float)Math.Sin(i + name.Length));
        }
        return TensorPayload.FromBytes(name, DType.F32, sh, bytes);
    }

    private static IEnumerable<TensorPayload> Tensors(string layer, int kind, long o, long i, long k)
    {
        switch (kind)
        {
            case 0:
                yield return P($"{layer}.weight", o, i, k, k);
                yield return P($"{layer}.bias", o);
                break;
            case 1:
                yield return P($"{layer}.weight", o);
                yield return P($"{layer}.bias", o);
                yield return P($"{layer}.running_mean", o);
                yield return P($"{layer}.running_var", o);
                break;
            default:
                yield return P($"{layer}.weight", o, i);
                yield return P($"{layer}.bias", o);
                break;
        }
    }

    /// <summary>The JSON without what only a transfer has: the output, and measured channel indices.</summary>
    private static string Comparable(TransferReport report)
    {
        var node = JsonNode.Parse(report.ToJson())!.AsObject();
        node.Remove("output");
        foreach (var t in node["targets"]!.AsArray())
        {
            t!.AsObject().Remove("channelIndices");
        }
        return node.ToJsonString();
    }

    [Fact]
    public void PlanAndTransfer_SameSummaryVerdictAndJson()
    {
        int n = 0;
        GenCase.Sample(c =>
        {
            var dir = Path.Combine(_dir, Interlocked.Increment(ref n).ToString(System.Globalization.CultureInfo.InvariantCulture));
            Directory.CreateDirectory(dir);
            var source = new List<TensorPayload>();
            var template = new List<TensorPayload>();
            for (int i = 0; i < c.Layers.Count; i++)
            {
                var l = c.Layers[i];
                source.AddRange(Tensors($"l{i}", l.Kind, l.Out, l.In, l.K));
                if (l.Present)
                {
                    template.AddRange(Tensors($"l{i}", l.Kind, l.TOut, l.TIn, l.TK));
                }
            }
            if (c.Extra)
            {
                template.AddRange(Tensors("extra", 0, 2, 1, 1));
            }
            var rules = c.Rule switch
            {
                0 => [new TensorRule("l0.*") { Reinit = true }],
                1 => [new TensorRule("l0.*") { Skip = true }],
                _ => new List<TensorRule>(),
            };
            var policy = TransferPolicy.Default with { OutShrink = c.Shrink, NewChannels = c.Fresh, Kernel = c.Kernel, Rules = rules, Seed = 3 };
            string src = Path.Combine(dir, "src.safetensors"), tpl = Path.Combine(dir, "tpl.safetensors"), output = Path.Combine(dir, "out.safetensors");
            CheckpointFile.Write(src, source);
            CheckpointFile.Write(tpl, template);

            TransferReport planned;
            using (var s = CheckpointFile.Open(src))
            using (var t = CheckpointFile.Open(tpl))
            {
                try
                {
                    planned = Graft.Transfer.WeightTransfer.Plan(s, t, policy).Report(s, t);
                }
                catch (TransferPlanException)
                {
                    // A planned refusal: the transfer refuses the same way, writing nothing.
                    Assert.Throws<TransferPlanException>(() => Graft.Transfer.WeightTransfer.Files(src, tpl, output, policy));
                    Assert.False(File.Exists(output));
                    return;
                }
                catch (TransferRefusedException planRefused)
                {
                    // A template none of whose layers outside the head has a source (only `extra`, say): both refuse,
                    // with the same words, and nothing is written.
                    var transferRefused = Assert.Throws<TransferRefusedException>(() => Graft.Transfer.WeightTransfer.Files(src, tpl, output, policy));
                    Assert.Equal(planRefused.Message, transferRefused.Message);
                    Assert.False(File.Exists(output));
                    return;
                }
            }
            var done = Graft.Transfer.WeightTransfer.Files(src, tpl, output, policy);
            Assert.Null(planned.Output);
            Assert.NotNull(done.Output);
            Assert.Equal(done.Summary, planned.Summary);
            Assert.Equal(done.Summary.VerdictText, planned.Summary.VerdictText);
            Assert.Equal(Comparable(done), Comparable(planned));
        }, iter: 60);
    }
}
