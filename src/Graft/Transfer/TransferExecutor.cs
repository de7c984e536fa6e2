using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transfer;

/// <summary>
/// Carries out a plan, deciding nothing: each target is read, put through its planned transform chain, cast to the
/// target's dtype and written. Copies and kept tensors stream from their checkpoint; a computed tensor is produced
/// when the writer reaches it (in float32, or float64 when the source is float64), so only one is in memory at a time.
/// </summary>
/// <remarks>
/// What execution measures is kept for the report: the channel map of each planned decision (a largest-norm ranking
/// reads the source's weights), computed once and shared by every tensor that applies it.
/// </remarks>
internal sealed class TransferExecutor
{
    private readonly TransferPlan _plan;
    private readonly ICheckpointReader _source;
    private readonly ICheckpointReader _template;
    private readonly Dictionary<OutDecision, ChannelMap> _maps = new(ReferenceEqualityComparer.Instance);
    private readonly Lock _gate = new();

    public TransferExecutor(TransferPlan plan, ICheckpointReader source, ICheckpointReader template)
    {
        _plan = plan;
        _source = source;
        _template = template;
    }

    public IReadOnlyList<TensorPayload> Outputs() => _plan.Targets.Select(Output).ToList();

    /// <summary>The channel map measured for <paramref name="decision"/>, or null when no tensor applying it has been computed yet.</summary>
    public ChannelMap? Measured(OutDecision decision)
    {
        lock (_gate)
        {
            return _maps.GetValueOrDefault(decision);
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
        // The planner made sure every computed tensor has dtypes TorchSharp holds.
        var targetType = TensorBridge.ToScalarType(p.Target.DType)
            ?? throw new InvalidOperationException($"Plan for '{p.Target.Name}' computes on dtype {p.Target.DType}, which TorchSharp cannot hold.");
        var input = p.Source is null ? empty(0, dtype: ScalarType.Float32) : TensorBridge.Read(_source, p.Source);
        Tensor result;
        if (ReferenceEquals(p.Transform, WeightTransform.Identity))
        {
            result = input.to(targetType);
        }
        else
        {
            var work = input.dtype == ScalarType.Float64 ? input : input.to(ScalarType.Float32);
            result = Bound(p, work.dtype).Apply(work).to(targetType);
        }
        return TensorBridge.ToBytes(result);
    }

    /// <summary>
    /// The plan's chain with each planned channel selection given its measured map (and the template's init when it
    /// fills from it). What runs is what the plan showed: the same ops, described the same way.
    /// </summary>
    private WeightTransform Bound(TargetPlan p, ScalarType work)
    {
        var bound = Chain.Of(Chain.StepsOf(p.Transform).Select(step => step is PlannedChannels planned
            ? planned.Bind(MapFor(planned.Decision), () => ChannelFill.FromTemplate(TensorBridge.Read(_template, p.Target).to(work)))
            : step));
        if (bound.Op != p.Transform.Op || bound.Describe() != p.Transform.Describe())
        {
            throw new InvalidOperationException($"'{p.Target.Name}': the plan showed '{p.Transform.Describe()}' but would run '{bound.Describe()}'.");
        }
        return bound;
    }

    private ChannelMap MapFor(OutDecision d)
    {
        if (Measured(d) is { } cached)
        {
            return cached;
        }
        var map = d.MapKind switch
        {
            ChannelMapKind.Cyclic => ChannelMap.Cyclic(d.SourceCount, d.TargetCount),
            ChannelMapKind.LargestL1 or ChannelMapKind.LargestL2 => Rank(d),
            _ => ChannelMap.First(d.SourceCount, d.TargetCount, d.Groups),
        };
        lock (_gate)
        {
            return _maps.TryAdd(d, map) ? map : _maps[d];
        }
    }

    /// <summary>Ranks channels by the weights' norms; a group sums the scores of all its producers, as Torch-Pruning does.</summary>
    private ChannelMap Rank(OutDecision d)
    {
        var weights = new List<(Tensor, Layout)>();
        try
        {
            foreach (var n in d.NormSources)
            {
                var info = _source.TryGetTensor(n.Name, out var found) ? found : throw new InvalidOperationException($"{_source.Path} has no tensor '{n.Name}'.");
                weights.Add((TensorBridge.Read(_source, info), n.Layout));
            }
            return ChannelMap.LargestNorm(weights, d.TargetCount, d.MapKind == ChannelMapKind.LargestL1 ? ChannelNorm.L1 : ChannelNorm.L2);
        }
        finally
        {
            foreach (var (w, _) in weights)
            {
                w.Dispose();
            }
        }
    }

    private sealed class ComputedPayload(TensorInfo target, Func<byte[]> compute) : TensorPayload(target.Name, target.DType, target.Shape)
    {
        public override bool IsComputed => true;

        public override void WriteTo(Stream destination) => destination.Write(compute());
    }
}
