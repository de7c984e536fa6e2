using System.Buffers.Binary;
using CsCheck;
using Graft.Checkpoints;
using Graft.Transfer;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

/// <summary>
/// DESIGN rule 8: if <c>plan</c> and <c>transfer</c> could ever disagree, the design is wrong. Random (source, template)
/// pairs of layers — conv (plain, grouped, depthwise), linear and BatchNorm, other kernels, dtypes TorchSharp cannot
/// hold, renamed and missing tensors, policies and rules — with random non-zero values are planned and transferred file
/// to file. For a case generated to plan: the plan is made, every target's status, source and steps in the report are
/// the plan's, and every written value is what the plan says (copies and kept tensors byte for byte, casts against an
/// independent decoding, computed tensors against the plan's own chain bound and applied here, not by the executor);
/// <c>--strict</c> refuses exactly when the plan says it would. For a case generated to be refused (one layer with a
/// rule that cannot hold), plan and transfer both refuse, with the same exception naming the same tensor for the same
/// reason, and nothing is written.
/// </summary>
/// <remarks>
/// Structure, so that more can be held to the plan (summary, verdict, JSON): <see cref="GenCase"/> makes cases,
/// <see cref="Build"/> turns one into checkpoints and a policy, <see cref="Run"/> plans and transfers it and calls one
/// <c>Assert…</c> method per promise; <see cref="Counts"/> records what was checked, and the test asserts minimums.
/// </remarks>
public sealed class PlanAgreesWithTransferTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("graft-plan-agrees-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // ---------------------------------------------------------------------------------------------------------------
    // Cases
    // ---------------------------------------------------------------------------------------------------------------

    private enum Kind { Conv, Grouped, Depthwise, Linear, Norm }

    private sealed record LayerSpec(Kind Kind, long Out, long In, long K, DType DType);

    /// <summary>A rule that cannot hold, put on one extra layer named <c>bad</c>: what the planner must refuse.</summary>
    private enum Refusal
    {
        /// <summary>Largest-norm shrinking asked on a grouped convolution.</summary>
        LargestNormOnGrouped,
        /// <summary>The in-channel rule sum asked where the inputs grow.</summary>
        SumOnGrowingInputs,
        /// <summary>A rename rule that turns a source tensor into a name the template does not have.</summary>
        RenameToMissing,
    }

    private sealed record Case(
        IReadOnlyList<(LayerSpec Source, LayerSpec Target, int Naming)> Layers, OutShrinkRule Shrink, NewChannelRule Fresh, KernelRule Kernel,
        bool SkipFirst, bool ReinitLast, Refusal? Refuse, int Seed);

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

    // About one case in five is generated to be refused.
    private static readonly Gen<Refusal?> GenRefusal = Gen.Int[0, 14].Select(i => i switch
    {
        0 => Refusal.LargestNormOnGrouped,
        1 => Refusal.SumOnGrowingInputs,
        2 => (Refusal?)Refusal.RenameToMissing,
        _ => null,
    });

    private static readonly Gen<Case> GenCase = Gen.Select(
        GenPair.List[1, 4],
        Pick(OutShrinkRule.First, OutShrinkRule.LargestL1, OutShrinkRule.LargestL2),
        Pick(NewChannelRule.Template, NewChannelRule.Zeros, NewChannelRule.KaimingNormal, NewChannelRule.Copies),
        Pick(KernelRule.Fit, KernelRule.Bilinear, KernelRule.PIResize, KernelRule.Reinit),
        Gen.Int[0, 7], Gen.Int[0, 7], GenRefusal, Gen.Int)
        .Select((layers, shrink, fresh, kernel, skip, reinit, refuse, seed) => new Case(
            layers.Select(l => (l.Item1, l.Item2, l.Item3)).ToList(), shrink, fresh, kernel, skip == 0, reinit == 0, refuse, seed));

    // ---------------------------------------------------------------------------------------------------------------
    // Checkpoints with random values
    // ---------------------------------------------------------------------------------------------------------------

    /// <summary>Random non-zero values of <paramref name="dtype"/> (variances positive), as the file holds them.</summary>
    private static byte[] RandomBytes(Random rng, DType dtype, long count, bool positive)
    {
        var bytes = new byte[count * dtype.ElementSize()];
        var span = bytes.AsSpan();
        for (int i = 0; i < count; i++)
        {
            double v = (0.05 + rng.NextDouble()) * (positive || rng.Next(2) == 0 ? 1 : -1);
            switch (dtype)
            {
                case DType.F32: BinaryPrimitives.WriteSingleLittleEndian(span[(i * 4)..], (float)v); break;
                case DType.F64: BinaryPrimitives.WriteDoubleLittleEndian(span[(i * 8)..], v); break;
                case DType.F16: BinaryPrimitives.WriteHalfLittleEndian(span[(i * 2)..], (Half)v); break;
                // bfloat16 is the top half of a float32: truncating gives a representable value.
                case DType.BF16: BinaryPrimitives.WriteUInt16LittleEndian(span[(i * 2)..], (ushort)(BitConverter.SingleToUInt32Bits((float)v) >> 16)); break;
                case DType.U16: BinaryPrimitives.WriteUInt16LittleEndian(span[(i * 2)..], (ushort)rng.Next(1, 1000)); break;
                case DType.I32: BinaryPrimitives.WriteInt32LittleEndian(span[(i * 4)..], rng.Next(1, 1000) * (positive ? 1 : rng.Next(2) * 2 - 1)); break;
                case DType.I64: BinaryPrimitives.WriteInt64LittleEndian(span[(i * 8)..], rng.Next(1, 1000)); break;
                default: throw new NotSupportedException(dtype.ToString());
            }
        }
        return bytes;
    }

    /// <summary>An independent decoding of a tensor's bytes to float64 (not the library's twins or bridge).</summary>
    private static double[] Decode(byte[] bytes, DType dtype)
    {
        int size = dtype.ElementSize(), n = bytes.Length / size;
        var values = new double[n];
        var span = bytes.AsSpan();
        for (int i = 0; i < n; i++)
        {
            var e = span[(i * size)..];
            values[i] = dtype switch
            {
                DType.F32 => BinaryPrimitives.ReadSingleLittleEndian(e),
                DType.F64 => BinaryPrimitives.ReadDoubleLittleEndian(e),
                DType.F16 => (double)BinaryPrimitives.ReadHalfLittleEndian(e),
                DType.BF16 => BitConverter.UInt32BitsToSingle((uint)BinaryPrimitives.ReadUInt16LittleEndian(e) << 16),
                DType.U16 => BinaryPrimitives.ReadUInt16LittleEndian(e),
                DType.I32 => BinaryPrimitives.ReadInt32LittleEndian(e),
                DType.I64 => BinaryPrimitives.ReadInt64LittleEndian(e),
                _ => throw new NotSupportedException(dtype.ToString()),
            };
        }
        return values;
    }

    /// <summary>The tensors of one layer, with random values.</summary>
    private static IEnumerable<TensorPayload> Tensors(string layer, LayerSpec s, Random rng)
    {
        TensorPayload P(string member, DType dtype, params long[] shape)
        {
            var sh = new Shape(shape);
            return TensorPayload.FromBytes($"{layer}.{member}", dtype, sh, RandomBytes(rng, dtype, sh.ElementCount, member == "running_var"));
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

    /// <summary>A checkpoint as the test made it: each tensor's dtype, shape and bytes, by name.</summary>
    private sealed class Made : Dictionary<string, (DType DType, Shape Shape, byte[] Bytes)>
    {
        public Made() : base(StringComparer.Ordinal)
        {
        }

        public List<TensorPayload> Payloads { get; } = [];

        public void Add(TensorPayload p, byte[] bytes)
        {
            Add(p.Name, (p.DType, p.Shape, bytes));
            Payloads.Add(p);
        }

        public void AddAll(IEnumerable<TensorPayload> payloads)
        {
            foreach (var p in payloads)
            {
                using var stream = new MemoryStream();
                p.WriteTo(stream);
                Add(p, stream.ToArray());
            }
        }

        /// <summary>The tensor as float64 (TorchSharp), for binding and applying the plan's chain.</summary>
        public Tensor ValuesOf(string name)
        {
            var (dtype, shape, bytes) = this[name];
            return tensor(Decode(bytes, dtype), dtype: ScalarType.Float64).reshape(shape.ToArray());
        }
    }

    /// <summary>The name of the layer a <see cref="Refusal"/> is put on, and its weight (the tensor the refusal names).</summary>
    private const string Bad = "bad";

    private static (Made Source, Made Template, TransferPolicy Policy) Build(Case c)
    {
        var rng = new Random(c.Seed);
        var source = new Made();
        var template = new Made();
        var rules = new List<TensorRule>();
        var renames = new List<RenameRule>();
        for (int i = 0; i < c.Layers.Count; i++)
        {
            var (s, t, naming) = c.Layers[i];
            if (i == 0 && naming == 0 && c.Layers.All(l => l.Item3 == 0))
            {
                // A template no source tensor names at all is refused by design (nothing would be carried over, see
                // EmptyTransferTests); a case generated to plan keeps at least its first layer's name.
                naming = 2;
            }
            string srcName = $"l{i}", tgtName = naming switch
            {
                0 => $"m{i}",                // no source of this name: kept, the source unused
                1 => $"r{i}",                // renamed by a rule
                _ => $"l{i}",
            };
            if (naming == 1 && !Members(s.Kind).All(Members(t.Kind).Contains))
            {
                // A rename of a tensor the target layer does not have is refused (see Refusal.RenameToMissing): a case
                // generated to plan renames only layers whose members the target has.
                (naming, tgtName) = (2, srcName);
            }
            if (naming == 1)
            {
                renames.Add(RenameRule.Parse($@"^l{i}\.=r{i}."));
            }
            source.AddAll(Tensors(srcName, s, rng));
            template.AddAll(Tensors(tgtName, t, rng));
            // Grouped and depthwise targets shrink by first-n: largest-norm on them is what a refused case asks.
            if (t.Kind is Kind.Grouped)
            {
                rules.Add(new TensorRule($"{tgtName}.weight") { Layout = Layout.Conv(2, 2), OutShrink = OutShrinkRule.First });
            }
            else if (t.Kind is Kind.Depthwise)
            {
                rules.Add(new TensorRule($"{tgtName}.weight") { Layout = Layout.Conv(2, (int)t.Out), OutShrink = OutShrinkRule.First });
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
        // The bad layer's channel counts (7, 9, 12, 14) are none of the other layers' (2 to 6), so no other layer can
        // be taken to carry or read its channels (which would make the planner fall back to first-n, not refuse).
        switch (c.Refuse)
        {
            case Refusal.LargestNormOnGrouped:
                // 14 → 12 out channels of a convolution in 2 groups, largest-L2 asked.
                source.AddAll(Tensors(Bad, new LayerSpec(Kind.Conv, 14, 7, 3, DType.F32), rng));
                template.AddAll(Tensors(Bad, new LayerSpec(Kind.Grouped, 12, 7, 3, DType.F32), rng));
                rules.Add(new TensorRule($"{Bad}.weight") { Layout = Layout.Conv(2, 2), OutShrink = OutShrinkRule.LargestL2 });
                break;
            case Refusal.SumOnGrowingInputs:
                // 7 → 9 inputs, sum asked (sum only shrinks).
                source.AddAll(Tensors(Bad, new LayerSpec(Kind.Conv, 12, 7, 3, DType.F32), rng));
                template.AddAll(Tensors(Bad, new LayerSpec(Kind.Conv, 12, 9, 3, DType.F32), rng));
                rules.Add(new TensorRule($"{Bad}.weight") { InChannels = InChannelRule.Sum });
                break;
            case Refusal.RenameToMissing:
                // bad.weight and bad.bias renamed to bad2.*; the template's bad2 has no bias.
                source.AddAll(Tensors(Bad, new LayerSpec(Kind.Conv, 12, 7, 3, DType.F32), rng));
                template.AddAll(Tensors($"{Bad}2", new LayerSpec(Kind.Grouped, 12, 7, 3, DType.F32), rng));
                renames.Add(RenameRule.Parse($@"^{Bad}\.={Bad}2."));
                break;
        }
        var policy = TransferPolicy.Default with
        {
            OutShrink = c.Shrink, NewChannels = c.Fresh, Kernel = c.Kernel, Rules = rules, Renames = renames, Seed = 7,
        };
        return (source, template, policy);
    }

    /// <summary>What a refused case's exception must say: the tensor and the reason.</summary>
    private static string RefusalText(Refusal r) => r switch
    {
        Refusal.LargestNormOnGrouped => $"{Bad}.weight: largest-norm selection is not supported on grouped convolutions",
        Refusal.SumOnGrowingInputs => $"{Bad}.weight: in-channel rule sum cannot take 7 inputs to 9",
        _ => $@"Rename rule '^{Bad}\.' → '{Bad}2.' turns source '{Bad}.bias' into '{Bad}2.bias', which the template does not have.",
    };

    /// <summary>The members a layer of <paramref name="kind"/> has in <see cref="Tensors"/>.</summary>
    private static string[] Members(Kind kind) => kind switch
    {
        Kind.Conv or Kind.Linear => ["weight", "bias"],
        Kind.Grouped or Kind.Depthwise => ["weight"],
        _ => ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"],
    };

    // ---------------------------------------------------------------------------------------------------------------
    // The property
    // ---------------------------------------------------------------------------------------------------------------

    /// <summary>What the property checked, across all cases (CsCheck runs them on several threads).</summary>
    private sealed class Counts
    {
        public int Planned, Refused, Copied, Kept, Cast, Computed, ComputedFromChannelSelection, Strict;
    }

    [Fact]
    public void PlanAndTransfer_AgreeOnEveryTargetAndValue_AndRefuseTheSameCases()
    {
        int n = 0;
        var counts = new Counts();
        GenCase.Sample(c =>
        {
            // CsCheck samples on several threads: each case needs its own folder.
            var dir = Path.Combine(_dir, Interlocked.Increment(ref n).ToString(System.Globalization.CultureInfo.InvariantCulture));
            Directory.CreateDirectory(dir);
            Run(c, dir, counts);
        }, iter: 150);

        // The property means something only if it checked: most cases plan, some are refused, and values of every kind
        // were compared. (One case in five is generated to be refused; 150 cases.)
        var summary = $"planned {counts.Planned}, refused {counts.Refused}; compared: copied {counts.Copied}, kept {counts.Kept}, cast {counts.Cast}, " +
            $"computed {counts.Computed} ({counts.ComputedFromChannelSelection} with a channel selection), strict refusals {counts.Strict}";
        output.WriteLine(summary);
        Assert.True(counts.Planned >= 90, $"only {counts.Planned} of 150 cases planned");
        Assert.True(counts.Refused >= 10, $"only {counts.Refused} of 150 cases were refused");
        Assert.True(counts.Copied >= 20, $"only {counts.Copied} copied tensors compared");
        Assert.True(counts.Kept >= 100, $"only {counts.Kept} kept tensors compared");
        Assert.True(counts.Cast >= 10, $"only {counts.Cast} cast tensors compared");
        Assert.True(counts.Computed >= 100, $"only {counts.Computed} computed tensors compared");
        Assert.True(counts.ComputedFromChannelSelection >= 30, $"only {counts.ComputedFromChannelSelection} channel selections compared");
        Assert.True(counts.Strict >= 10, $"only {counts.Strict} strict refusals checked");
    }

    private static void Run(Case c, string dir, Counts counts)
    {
        var (source, template, policy) = Build(c);
        string src = Path.Combine(dir, "src.safetensors"), tpl = Path.Combine(dir, "tpl.safetensors"), output = Path.Combine(dir, "out.safetensors");
        CheckpointFile.Write(src, source.Payloads);
        CheckpointFile.Write(tpl, template.Payloads);

        if (c.Refuse is { } refusal)
        {
            AssertBothRefuse(refusal, src, tpl, output, policy);
            Interlocked.Increment(ref counts.Refused);
            return;
        }

        // A case generated to plan must plan: an exception here fails the property.
        TransferPlan plan;
        using (var s = CheckpointFile.Open(src))
        using (var t = CheckpointFile.Open(tpl))
        {
            plan = WeightTransfer.Plan(s, t, policy);
        }
        Interlocked.Increment(ref counts.Planned);

        var report = WeightTransfer.Files(src, tpl, output, policy);
        AssertSameTargets(plan, report);
        using (var written = CheckpointFile.Open(output))
        {
            AssertValuesArePlanned(plan, written, source, template, counts);
        }
        File.Delete(output);
        AssertStrictRefusesExactlyWhenPlanned(plan, src, tpl, output, policy, counts);
    }

    /// <summary>Plan and transfer refuse the case alike: same exception type, same message, naming the bad tensor and the reason.</summary>
    private static void AssertBothRefuse(Refusal refusal, string src, string tpl, string output, TransferPolicy policy)
    {
        TransferPlanException? planned = null;
        using (var s = CheckpointFile.Open(src))
        using (var t = CheckpointFile.Open(tpl))
        {
            try
            {
                var plan = WeightTransfer.Plan(s, t, policy);
                var bad = plan.Targets.Single(p => p.Target.Name == $"{Bad}.weight");
                Assert.Fail($"{refusal}: planned instead of refused: {bad.Status}, {bad.Reason}; notes: {string.Join(" | ", plan.Notes)}");
            }
            catch (TransferPlanException e)
            {
                planned = e;
            }
        }
        var transferred = Assert.Throws<TransferPlanException>(() => WeightTransfer.Files(src, tpl, output, policy));
        Assert.True(planned.Message.StartsWith(RefusalText(refusal), StringComparison.Ordinal), $"{refusal}: refused for another reason: {planned.Message}");
        Assert.Equal(planned.Message, transferred.Message);
        Assert.False(File.Exists(output));
    }

    private static List<(string Name, TargetStatus Status, string? Source, string Steps)> FromPlan(TransferPlan plan) =>
        plan.Targets.Select(t => (t.Target.Name, t.Status, t.Source?.Name, string.Join(" ", t.Steps.Select(s => s.Op + ": " + s.Detail)))).ToList();

    private static List<(string Name, TargetStatus Status, string? Source, string Steps)> FromReport(TransferReport report) =>
        report.Targets.Select(t => (t.Name, t.Status, t.Source, string.Join(" ", t.Steps.Select(s => s.Op + ": " + s.Detail)))).ToList();

    /// <summary>Every target's status, source and steps in the report are the plan's; so is the summary.</summary>
    private static void AssertSameTargets(TransferPlan plan, TransferReport report)
    {
        Assert.Equal(FromPlan(plan), FromReport(report));
        Assert.Equal(plan.Summary, report.Summary);
    }

    /// <summary>
    /// The written file holds the plan's targets (names, dtypes, shapes, order), and each one's values are what the plan
    /// says: a copy is the source's bytes, a kept tensor the template's, a cast the source's values rounded once to the
    /// target dtype (decoded here), a computed tensor the plan's chain — its channel selections bound to maps made here
    /// from the test's own values — applied here to the source's values in the plan's working precision.
    /// </summary>
    private static void AssertValuesArePlanned(TransferPlan plan, ICheckpointReader written, Made source, Made template, Counts counts)
    {
        Assert.Equal(plan.Targets.Select(p => (p.Target.Name, p.Target.DType, p.Target.Shape)), written.Tensors.Select(w => (w.Name, w.DType, w.Shape)));
        foreach (var (p, w) in plan.Targets.Zip(written.Tensors))
        {
            var bytes = new byte[w.ByteLength];
            written.ReadBytes(w, bytes);
            var what = $"{p.Target.Name} ({p.Status}, {p.Source?.DType}→{p.Target.DType}, {p.Transform.Describe()})";
            switch (p.Status)
            {
                case TargetStatus.Copied:
                    Assert.Equal(source[p.Source!.Name].Bytes, bytes);
                    Interlocked.Increment(ref counts.Copied);
                    break;
                case TargetStatus.Kept:
                    Assert.Equal(template[p.Target.Name].Bytes, bytes);
                    Interlocked.Increment(ref counts.Kept);
                    break;
                case TargetStatus.Cast:
                    var from = source[p.Source!.Name];
                    // Floating targets round to nearest (within u); integer targets truncate toward zero, as libtorch's .to().
                    var values = Decode(from.Bytes, from.DType);
                    if (UnitRoundoff(p.Target.DType) == 0)
                    {
                        values = values.Select(Math.Truncate).ToArray();
                    }
                    AssertClose(what, values, Decode(bytes, p.Target.DType), UnitRoundoff(p.Target.DType), Floor(p.Target.DType), elementwise: true);
                    Interlocked.Increment(ref counts.Cast);
                    break;
                default:
                    var (expected, selects) = ApplyPlannedChain(p, source, template);
                    // The executor and this reference run the same float32 (or float64) ops, perhaps by other kernels
                    // (managed twins): a few working-precision roundings, then one rounding to the target dtype.
                    var work = p.Source?.DType == DType.F64 ? 1.2e-15 : 1e-6;
                    AssertClose(what, expected, Decode(bytes, p.Target.DType), UnitRoundoff(p.Target.DType) + work, Floor(p.Target.DType), elementwise: false);
                    Interlocked.Increment(ref counts.Computed);
                    if (selects)
                    {
                        Interlocked.Increment(ref counts.ComputedFromChannelSelection);
                    }
                    break;
            }
        }
    }

    /// <summary>
    /// The plan's transform for <paramref name="p"/>, bound and applied here: float32 work (float64 for a float64
    /// source), as <see cref="TargetPlan.Transform"/> promises. Returns the values and whether a channel selection ran.
    /// </summary>
    private static (double[] Values, bool Selects) ApplyPlannedChain(TargetPlan p, Made source, Made template)
    {
        using var scope = NewDisposeScope();
        var workType = p.Source?.DType == DType.F64 ? ScalarType.Float64 : ScalarType.Float32;
        var input = p.Source is null ? empty(0, dtype: workType) : source.ValuesOf(p.Source.Name).to(workType);
        bool selects = false;
        var steps = Chain.StepsOf(p.Transform).Select(step =>
        {
            if (step is not PlannedChannels planned)
            {
                return step;
            }
            selects = true;
            return planned.Bind(MapFor(planned.Decision, source), () => ChannelFill.FromTemplate(template.ValuesOf(p.Target.Name).to(workType)));
        }).ToList();
        var result = Chain.Of(steps).Apply(input);
        Assert.Equal(p.Target.Shape.ToArray(), result.shape);
        return (result.to(ScalarType.Float64).contiguous().data<double>().ToArray(), selects);
    }

    /// <summary>The channel map a planned decision means, made from the decision and the test's own source values.</summary>
    private static ChannelMap MapFor(OutDecision d, Made source) => d.MapKind switch
    {
        ChannelMapKind.Cyclic => ChannelMap.Cyclic(d.SourceCount, d.TargetCount),
        ChannelMapKind.First => ChannelMap.First(d.SourceCount, d.TargetCount, d.Groups),
        _ => ChannelMap.LargestNorm(d.NormSources.Select(w => (source.ValuesOf(w.Name), w.Layout)).ToList(), d.TargetCount,
            d.MapKind == ChannelMapKind.LargestL1 ? ChannelNorm.L1 : ChannelNorm.L2),
    };

    /// <summary>Half the spacing of <paramref name="dtype"/>'s values relative to their magnitude (0 for integers: exact).</summary>
    private static double UnitRoundoff(DType dtype) => dtype switch
    {
        DType.F16 => Math.Pow(2, -11),
        DType.BF16 => Math.Pow(2, -8),
        DType.F32 => Math.Pow(2, -24),
        DType.F64 => Math.Pow(2, -53),
        _ => 0,
    };

    /// <summary>An absolute floor for values rounded into float16's subnormal range (spacing 2^-24).</summary>
    private static double Floor(DType dtype) => dtype == DType.F16 ? Math.Pow(2, -25) : 0;

    /// <summary>
    /// Finite and within <paramref name="rtol"/>: of each element (<paramref name="elementwise"/>) or of the tensor's
    /// largest magnitude (for computed values, whose reductions may round in another order); NaN fails.
    /// </summary>
    private static void AssertClose(string name, double[] expected, double[] actual, double rtol, double floor, bool elementwise)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Length == 0 ? 0 : expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(double.IsFinite(actual[i]), $"{name}[{i}] = {actual[i]}");
            double tol = rtol * (elementwise ? Math.Abs(expected[i]) : scale) + floor;
            Assert.True(Math.Abs(actual[i] - expected[i]) <= tol, $"{name}[{i}]: written {actual[i]:R}, planned {expected[i]:R} (tolerance {tol:g3})");
        }
    }

    /// <summary><c>--strict</c> refuses, before writing and with the plan's violations, exactly when the plan has violations.</summary>
    private static void AssertStrictRefusesExactlyWhenPlanned(TransferPlan plan, string src, string tpl, string output, TransferPolicy policy, Counts counts)
    {
        var strict = Record.Exception(() => WeightTransfer.Files(src, tpl, output, policy with { Strict = true }));
        if (plan.StrictViolations.Count > 0)
        {
            Assert.Equal(plan.StrictViolations, Assert.IsType<TransferStrictException>(strict).Violations);
            Assert.False(File.Exists(output));
            Interlocked.Increment(ref counts.Strict);
        }
        else
        {
            Assert.Null(strict);
        }
    }
}
