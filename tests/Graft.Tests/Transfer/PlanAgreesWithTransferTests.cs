using CsCheck;
using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Tests.Transfer;

/// <summary>
/// DESIGN rule 8: if <c>plan</c> and <c>transfer</c> could ever disagree, the design is wrong. Random (source, template)
/// pairs of layers — conv (plain, grouped, depthwise), linear and BatchNorm, other kernels, dtypes TorchSharp cannot
/// hold, renamed and missing tensors, policies and rules — are planned and transferred file to file: every target's
/// status, source and steps in the report are the plan's, nothing fails while writing, and <c>--strict</c> refuses
/// exactly when the plan says it would.
/// </summary>
public sealed class PlanAgreesWithTransferTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("graft-plan-agrees-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private enum Kind { Conv, Grouped, Depthwise, Linear, Norm }

    private sealed record LayerSpec(Kind Kind, long Out, long In, long K, DType DType);

    private sealed record Case(
        IReadOnlyList<(LayerSpec Source, LayerSpec Target, int Naming)> Layers, OutShrinkRule Shrink, NewChannelRule Fresh, KernelRule Kernel,
        bool SkipFirst, bool ReinitLast);

    private static Gen<T> Pick<T>(params T[] values) => Gen.Int[0, values.Length - 1].Select(i => values[i]);

    private static readonly DType[] SourceDTypes = [DType.F32, DType.F32, DType.F16, DType.BF16, DType.F64, DType.U16, DType.I32];
    private static readonly DType[] TargetDTypes = [DType.F32, DType.F32, DType.F16, DType.U16];

    private static Gen<LayerSpec> GenLayer(Kind kind) =>
        Gen.Select(Gen.Long[1, 3], Gen.Long[1, 3], Pick(1L, 3L, 5L), Pick(SourceDTypes), Pick(TargetDTypes), Gen.Bool)
            .Select((o, i, k, sd, td, useTarget) => new LayerSpec(kind, o * 2, i, k, useTarget ? td : sd));

    private static readonly Gen<Kind> GenKind = Pick(Kind.Conv, Kind.Grouped, Kind.Depthwise, Kind.Linear, Kind.Norm);

    // Mostly the same kind of layer on both sides; now and then another kind (other rank or roles).
    private static readonly Gen<(LayerSpec, LayerSpec, int)> GenPair =
        Gen.Select(GenKind, GenKind, Gen.Int[0, 7]).SelectMany((a, b, other) => Gen.Select(GenLayer(a), GenLayer(other == 0 ? b : a), Gen.Int[0, 5]));

    private static readonly Gen<Case> GenCase = Gen.Select(
        GenPair.List[1, 4],
        Pick(OutShrinkRule.First, OutShrinkRule.LargestL1, OutShrinkRule.LargestL2),
        Pick(NewChannelRule.Template, NewChannelRule.Zeros, NewChannelRule.KaimingNormal, NewChannelRule.Copies),
        Pick(KernelRule.Fit, KernelRule.Bilinear, KernelRule.PIResize, KernelRule.Reinit),
        Gen.Int[0, 7], Gen.Int[0, 7])
        .Select((layers, shrink, fresh, kernel, skip, reinit) => new Case(layers.Select(l => (l.Item1, l.Item2, l.Item3)).ToList(), shrink, fresh, kernel, skip == 0, reinit == 0));

    /// <summary>The tensors of one layer (zeros: every dtype holds them).</summary>
    private static IEnumerable<TensorPayload> Tensors(string layer, LayerSpec s)
    {
        TensorPayload P(string member, DType dtype, params long[] shape)
        {
            var sh = new Shape(shape);
            return TensorPayload.FromBytes($"{layer}.{member}", dtype, sh, new byte[sh.ElementCount * dtype.ElementSize()]);
        }
        switch (s.Kind)
        {
            case Kind.Conv:
                yield return P("weight", s.DType, s.Out, s.In, s.K, s.K);
                yield return P("bias", s.DType, s.Out);
                break;
            case Kind.Grouped:
                yield return P("weight", s.DType, s.Out, s.In, s.K, s.K); // groups 2: in = 2 × In
                break;
            case Kind.Depthwise:
                yield return P("weight", s.DType, s.Out, 1, s.K, s.K);
                break;
            case Kind.Linear:
                yield return P("weight", s.DType, s.Out, s.In * 2);
                yield return P("bias", s.DType, s.Out);
                break;
            default:
                yield return P("weight", s.DType, s.Out);
                yield return P("bias", s.DType, s.Out);
                yield return P("running_mean", s.DType, s.Out);
                yield return P("running_var", s.DType, s.Out);
                yield return P("num_batches_tracked", DType.I64);
                break;
        }
    }

    private static (List<TensorPayload> Source, List<TensorPayload> Template, TransferPolicy Policy) Build(Case c)
    {
        var source = new List<TensorPayload>();
        var template = new List<TensorPayload>();
        var rules = new List<TensorRule>();
        var renames = new List<RenameRule>();
        for (int i = 0; i < c.Layers.Count; i++)
        {
            var (s, t, naming) = c.Layers[i];
            string srcName = $"l{i}", tgtName = naming switch
            {
                0 => $"m{i}",                // no source of this name: kept, the source unused
                1 => $"r{i}",                // renamed by a rule
                _ => $"l{i}",
            };
            if (naming == 1)
            {
                renames.Add(RenameRule.Parse($@"^l{i}\.=r{i}."));
            }
            source.AddRange(Tensors(srcName, s));
            template.AddRange(Tensors(tgtName, t));
            if (t.Kind is Kind.Grouped)
            {
                rules.Add(new TensorRule($"{tgtName}.weight") { Layout = Layout.Conv(2, 2) });
            }
            else if (t.Kind is Kind.Depthwise)
            {
                rules.Add(new TensorRule($"{tgtName}.weight") { Layout = Layout.Conv(2, (int)t.Out) });
            }
        }
        if (c.SkipFirst)
        {
            rules.Add(new TensorRule("*0.*") { Skip = true });
        }
        if (c.ReinitLast)
        {
            rules.Add(new TensorRule($"*{c.Layers.Count - 1}.weight") { Reinit = true });
        }
        var policy = TransferPolicy.Default with
        {
            OutShrink = c.Shrink, NewChannels = c.Fresh, Kernel = c.Kernel, Rules = rules, Renames = renames, Seed = 7,
        };
        return (source, template, policy);
    }

    private static List<(string Name, TargetStatus Status, string? Source, string Steps)> FromPlan(TransferPlan plan) =>
        plan.Targets.Select(t => (t.Target.Name, t.Status, t.Source?.Name, string.Join(" ", t.Steps.Select(s => s.Op + ": " + s.Detail)))).ToList();

    private static List<(string Name, TargetStatus Status, string? Source, string Steps)> FromReport(TransferReport report) =>
        report.Targets.Select(t => (t.Name, t.Status, t.Source, string.Join(" ", t.Steps.Select(s => s.Op + ": " + s.Detail)))).ToList();

    [Fact]
    public void PlanAndTransfer_AgreeOnEveryTarget_AndStrictRefusesExactlyWhenPlanned()
    {
        int n = 0;
        GenCase.Sample(c =>
        {
            // CsCheck samples on several threads: each case needs its own folder.
            var dir = Path.Combine(_dir, Interlocked.Increment(ref n).ToString(System.Globalization.CultureInfo.InvariantCulture));
            Directory.CreateDirectory(dir);
            var (source, template, policy) = Build(c);
            string src = Path.Combine(dir, "src.safetensors"), tpl = Path.Combine(dir, "tpl.safetensors"), output = Path.Combine(dir, "out.safetensors");
            CheckpointFile.Write(src, source);
            CheckpointFile.Write(tpl, template);

            TransferPlan plan;
            using (var s = CheckpointFile.Open(src))
            using (var t = CheckpointFile.Open(tpl))
            {
                try
                {
                    plan = WeightTransfer.Plan(s, t, policy);
                }
                catch (Exception e)
                {
                    // A plan that cannot be made (a rule that does not fit) is refused by transfer the same way, before writing.
                    var thrown = Record.Exception(() => WeightTransfer.Files(src, tpl, output, policy));
                    Assert.NotNull(thrown);
                    Assert.Equal(e.GetType(), thrown.GetType());
                    Assert.False(File.Exists(output));
                    return;
                }
            }

            var report = WeightTransfer.Files(src, tpl, output, policy);
            Assert.Equal(FromPlan(plan), FromReport(report));
            Assert.Equal(plan.Summary, report.Summary);
            using (var written = CheckpointFile.Open(output))
            {
                Assert.Equal(plan.Targets.Select(p => (p.Target.Name, p.Target.DType, p.Target.Shape)), written.Tensors.Select(w => (w.Name, w.DType, w.Shape)));
            }
            File.Delete(output);

            var strict = Record.Exception(() => WeightTransfer.Files(src, tpl, output, policy with { Strict = true }));
            if (plan.StrictViolations.Count > 0)
            {
                Assert.Equal(plan.StrictViolations, Assert.IsType<TransferStrictException>(strict).Violations);
                Assert.False(File.Exists(output));
            }
            else
            {
                Assert.Null(strict);
            }
        }, iter: 150);
    }
}
