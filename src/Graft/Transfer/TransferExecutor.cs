using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transfer;

/// <summary>
/// Carries out a plan: produces one output payload per target tensor, lazily. Copies and kept tensors stream from their
/// checkpoint; an adapted tensor is read, computed (in float32, or float64 when the source is float64) and cast back
/// when the writer reaches it, so only one transformed tensor is in memory at a time.
/// </summary>
internal sealed class TransferExecutor
{
    private readonly TransferPlan _plan;
    private readonly ICheckpointReader _source;
    private readonly ICheckpointReader _template;
    private readonly Dictionary<string, ChannelMap> _maps = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (IReadOnlyList<ReportStep> Steps, IReadOnlyList<long>? Indices)> _done = new(StringComparer.Ordinal);
    private readonly object _gate = new();

    public TransferExecutor(TransferPlan plan, ICheckpointReader source, ICheckpointReader template)
    {
        _plan = plan;
        _source = source;
        _template = template;
    }

    public IReadOnlyList<TensorPayload> Outputs() => _plan.Targets.Select(Output).ToList();

    /// <summary>Steps and indices recorded for a target once its payload has been produced.</summary>
    public (IReadOnlyList<ReportStep> Steps, IReadOnlyList<long>? Indices) Recorded(string target)
    {
        lock (_gate)
        {
            return _done.TryGetValue(target, out var r) ? r : ([], null);
        }
    }

    private TensorPayload Output(TargetPlan p) => p.Status switch
    {
        TargetStatus.Copied => TensorPayload.FromCheckpoint(_source, p.Source!, p.Target.Name),
        TargetStatus.Kept => TensorPayload.FromCheckpoint(_template, p.Target),
        _ => new ComputedPayload(p.Target, () => Compute(p)),
    };

    private byte[] Compute(TargetPlan p)
    {
        TensorBridge.AfterWarmUp();
        Numerics.NumericsGuard.Ensure();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var targetType = TensorBridge.ToScalarType(p.Target.DType)
            ?? throw new NotSupportedException($"{_template.Path}: tensor '{p.Target.Name}' has dtype {p.Target.DType}, which TorchSharp cannot compute on.");
        Tensor result;
        if (p.Status == TargetStatus.Cast)
        {
            result = TensorBridge.Read(_source, p.Source!).to(targetType);
            Record(p, [new ReportStep("cast", $"{p.Source!.DType}→{p.Target.DType}")], null);
        }
        else if (p.Status == TargetStatus.Reinitialized)
        {
            var t = Reinit.KaimingNormal(p.Target.Shape, SeedFor(p.Target.Name));
            result = t.Apply(empty(0, dtype: ScalarType.Float32)).to(targetType);
            Record(p, [new ReportStep(t.Op, t.Describe())], null);
        }
        else
        {
            var src = TensorBridge.Read(_source, p.Source!);
            var work = src.dtype == ScalarType.Float64 ? src : src.to(ScalarType.Float32);
            var (chain, indices) = Build(p, work.dtype);
            result = chain.Apply(work).to(targetType);
            var steps = chain is Chain c ? c.Steps : [chain];
            Record(p, steps.Select(s => new ReportStep(s.Op, s.Describe())).ToList(), indices);
        }
        return TensorBridge.ToBytes(result);
    }

    private (WeightTransform Chain, IReadOnlyList<long>? Indices) Build(TargetPlan p, ScalarType work)
    {
        var layout = p.Layout;
        var steps = new List<WeightTransform>();
        if (p.In is { Follows: { } followed } f)
        {
            var map = MapFor(followed);
            steps.Add(InChannels.Follow(layout, f.BlockSize == 1 ? map : map.ExpandBlocks(f.BlockSize)));
        }
        else if (p.In is { } i)
        {
            steps.Add(i.Rule switch
            {
                InChannelRule.Sum => InChannels.Sum(layout, i.SourceCount, i.TargetCount),
                InChannelRule.Mean => InChannels.Mean(layout, i.SourceCount, i.TargetCount),
                InChannelRule.RepeatRescale => InChannels.RepeatRescale(layout, i.SourceCount, i.TargetCount),
                InChannelRule.Truncate => InChannels.Truncate(layout, i.SourceCount, i.TargetCount),
                _ => InChannels.ZeroExtend(layout, i.SourceCount, i.TargetCount),
            });
        }
        if (p.Kernel is { } k)
        {
            steps.Add(k.Rule switch
            {
                KernelRule.Bilinear => Kernel.Resize(layout, k.TargetSize, KernelResize.Bilinear),
                KernelRule.Bicubic => Kernel.Resize(layout, k.TargetSize, KernelResize.Bicubic),
                KernelRule.PIResize => Kernel.PIResize(layout, k.TargetSize),
                _ => Kernel.CenterFit(layout, k.TargetSize),
            });
        }
        IReadOnlyList<long>? indices = null;
        if (p.Out is { } d)
        {
            var map = MapFor(d);
            if (map.How is not ("first" or "cyclic"))
            {
                indices = map.ToArray();
            }
            steps.Add(OutChannels.Apply(layout, map, FillFor(p, d, work)));
        }
        return (Chain.Of(steps), indices);
    }

    private ChannelMap MapFor(OutDecision d)
    {
        var key = (d.Group is null ? d.Layer : "\u0002" + d.Group) + "\u0001" + d.SourceCount + "\u0001" + d.TargetCount;
        lock (_gate)
        {
            if (_maps.TryGetValue(key, out var cached))
            {
                return cached;
            }
        }
        ChannelMap map;
        if (d.TargetCount > d.SourceCount && d.NewChannels == NewChannelRule.Copies)
        {
            map = ChannelMap.Cyclic(d.SourceCount, d.TargetCount);
        }
        else if (d.Shrink != OutShrinkRule.First && d.NormSources.Count > 0)
        {
            // Ranked by the weight's channel norms; a group sums the scores of all its producers, as Torch-Pruning does.
            var weights = new List<(Tensor, Layout)>();
            try
            {
                foreach (var n in d.NormSources)
                {
                    weights.Add((TensorBridge.Read(_source, _source.TryGetTensor(n.Name, out var info) ? info : throw new InvalidOperationException($"{_source.Path} has no tensor '{n.Name}'.")), n.Layout));
                }
                map = ChannelMap.LargestNorm(weights, d.TargetCount, d.Shrink == OutShrinkRule.LargestL1 ? ChannelNorm.L1 : ChannelNorm.L2);
            }
            finally
            {
                foreach (var (w, _) in weights)
                {
                    w.Dispose();
                }
            }
        }
        else
        {
            map = ChannelMap.First(d.SourceCount, d.TargetCount, d.Groups);
        }
        lock (_gate)
        {
            _maps[key] = map;
        }
        return map;
    }

    private ChannelFill FillFor(TargetPlan p, OutDecision d, ScalarType work)
    {
        var member = p.Target.Name[(p.Target.Name.LastIndexOf('.') + 1)..];
        bool vector = p.Layout.Kind == LayerKind.Vector;
        switch (d.NewChannels)
        {
            case NewChannelRule.Template:
            case NewChannelRule.Copies: // copies leave no new channel; the fill is never used
                return ChannelFill.FromTemplate(TensorBridge.Read(_template, p.Target).to(work));
            case NewChannelRule.Zeros:
                return vector && member == "running_var" ? ChannelFill.Constant(1) : ChannelFill.Zeros;
            default:
                // Kaiming for weights; vectors start as a fresh layer would: BatchNorm scale and variance 1, the rest 0.
                if (!vector)
                {
                    return ChannelFill.KaimingNormal(SeedFor(p.Target.Name));
                }
                return member is "running_var" || (member == "weight" && p.Layout.Kind == LayerKind.Vector) ? ChannelFill.Constant(1) : ChannelFill.Zeros;
        }
    }

    private long SeedFor(string name)
    {
        // FNV-1a of the name mixed with the policy seed: reproducible, and different per tensor.
        ulong h = 14695981039346656037UL;
        foreach (var ch in name)
        {
            h = (h ^ ch) * 1099511628211UL;
        }
        return (long)((h ^ (ulong)_plan.Policy.Seed) & 0x7FFF_FFFF_FFFF_FFFFUL);
    }

    private void Record(TargetPlan p, IReadOnlyList<ReportStep> steps, IReadOnlyList<long>? indices)
    {
        lock (_gate)
        {
            _done[p.Target.Name] = (steps, indices);
        }
    }

    private sealed class ComputedPayload(TensorInfo target, Func<byte[]> compute) : TensorPayload(target.Name, target.DType, target.Shape)
    {
        public override bool IsComputed => true;

        public override void WriteTo(Stream destination) => destination.Write(compute());
    }
}
