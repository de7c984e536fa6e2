using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transfer;

/// <summary>
/// Carries out a plan, deciding nothing: each target is read, put through its planned transform chain, cast to the
/// target's dtype and written. Copies and kept tensors stream from their checkpoint; a computed tensor is produced
/// when the writer reaches it (in the plan's <see cref="TargetPlan.ComputeDType"/>), so only one is in memory at a time.
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

    /// <summary>One payload per target, made when the writer reads it (a list of 200,000 held payloads is memory for nothing).</summary>
    public IReadOnlyList<TensorPayload> Outputs() => ComputedList.Select(_plan.Targets, Output);

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
        _ => new ComputedPayload(p.Target, destination => Write(p, destination)),
    };

    /// <summary>
    /// Produces a computed target into <paramref name="destination"/>: streamed in its stored dtype when its chain only
    /// moves and scales values (<see cref="GatherChain"/>, the same bytes as the twins), else made whole and written.
    /// </summary>
    private void Write(TargetPlan p, Stream destination)
    {
        if (p.Engine == TargetEngine.Managed && p.Source is { } source
            && GatherChain.TryCompose(Chain.StepsOf(p.Transform), source.Shape) is { } gather
            && Math.Max(source.Shape.ElementCount * source.DType.ElementSize(), source.Shape.ElementCount * p.Target.DType.ElementSize()) <= Array.MaxLength)
        {
            // A bare cast computes as Twins.Cast does (through float64 for a float64 source); a chain in its compute dtype.
            bool wide = ReferenceEquals(p.Transform, WeightTransform.Identity) ? source.DType == DType.F64 : p.ComputeDType == DType.F64;
            if (wide)
            {
                WriteGathered<double>(p, gather, destination);
            }
            else
            {
                WriteGathered<float>(p, gather, destination);
            }
            return;
        }
        var bytes = p.Engine == TargetEngine.Managed ? ComputeManaged(p) : Compute(p);
        destination.Write(bytes);
        if (bytes.Length >= CollectAfterBytes)
        {
            bytes = null;
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: false);
        }
    }

    /// <summary>
    /// A computed tensor this large leaves several buffers of its size behind (the source's bytes, float copies, each
    /// step's output). The .NET heap does not collect them before the next tensor allocates its own: growing a 7B-shaped
    /// checkpoint ×2 in width step by step reached 10.8 GB resident for 0.5 GB tensors, 3.1 GB under a 3 GB heap limit.
    /// Collecting once after each such tensor keeps the process near one tensor's working set, at the cost of a
    /// collection of a heap whose live part is small. (Gathered tensors reuse <see cref="_buffer"/> instead.)
    /// </summary>
    private const int CollectAfterBytes = 64 << 20;

    /// <summary>
    /// The source's bytes of the gathered tensor being written, reused by the next one: the process holds one buffer of
    /// the largest gathered source (in the larger of its two dtypes) rather than a new one per tensor for the GC to find.
    /// </summary>
    private byte[]? _buffer;

    /// <summary>The block the output is gathered into before each write (up to <see cref="GatherChain.BlockBytes"/>), reused likewise.</summary>
    private byte[]? _block;

    private void WriteGathered<T>(TargetPlan p, GatherChain gather, Stream destination) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var source = p.Source!;
        int blockBytes = (int)Math.Clamp(p.Target.ByteLength, 8, GatherChain.BlockBytes);
        var block = Interlocked.Exchange(ref _block, null);
        if (block is null || block.Length < blockBytes)
        {
            block = GC.AllocateUninitializedArray<byte>(blockBytes);
        }
        try
        {
            if (gather.IsConstant)
            {
                gather.WriteConstant(gather.ConstantValue<T>(p.Target.DType), destination, block);
                return;
            }
            long elements = source.Shape.ElementCount;
            long need = elements * Math.Max(source.DType.ElementSize(), p.Target.DType.ElementSize());
            var buffer = Interlocked.Exchange(ref _buffer, null);
            if (buffer is null || buffer.Length < need)
            {
                buffer = null;
                buffer = GC.AllocateUninitializedArray<byte>((int)need);
            }
            try
            {
                _source.ReadBytes(source, buffer.AsSpan(0, checked((int)source.ByteLength)));
                gather.ConvertInPlace<T>(buffer, elements, source.DType, p.Target.DType);
                gather.Write(buffer, p.Target.DType.ElementSize(), destination, block);
            }
            finally
            {
                _buffer = buffer;
            }
        }
        finally
        {
            _block = block;
        }
    }

    /// <summary>
    /// The managed twin of <see cref="Compute"/>: the same read, chain and cast on spans, without libtorch (so without
    /// its warm-up or the numerics guard, which exist for libtorch's kernels).
    /// </summary>
    private byte[] ComputeManaged(TargetPlan p)
    {
        var source = p.Source!;
        var bytes = new byte[source.ByteLength];
        _source.ReadBytes(source, bytes);
        if (ReferenceEquals(p.Transform, WeightTransform.Identity))
        {
            return Twins.Cast(bytes, source.DType, p.Target.DType);
        }
        return p.ComputeDType == DType.F64 ? ComputeManaged<double>(p, bytes) : ComputeManaged<float>(p, bytes);
    }

    private byte[] ComputeManaged<T>(TargetPlan p, byte[] bytes) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        Func<ChannelFill> templateFill = () =>
        {
            var template = new byte[p.Target.ByteLength];
            _template.ReadBytes(p.Target, template);
            return ChannelFill.FromTemplateValues(Twins.Decode<T>(template, p.Target.DType), p.Target.Shape);
        };
        return Twins.RunSteps<T>(bytes, p.Source!.DType, p.Source.Shape, Chain.StepsOf(p.Transform).Select(step => StepToRun(step, templateFill)), p.Target.DType);
    }

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
            var workType = p.ComputeDType == DType.F64 ? ScalarType.Float64 : ScalarType.Float32;
            var work = input.dtype == workType ? input : input.to(workType);
            Func<ChannelFill> templateFill = () => ChannelFill.FromTemplate(TensorBridge.Read(_template, p.Target).to(workType));
            foreach (var step in Chain.StepsOf(p.Transform))
            {
                work = StepToRun(step, templateFill).Apply(work);
            }
            result = work.to(targetType);
        }
        return TensorBridge.ToBytes(result);
    }

    /// <summary>
    /// The plan's step as it runs: itself, or for a planned channel selection the same selection with the decision's
    /// measured map (and the template's init when it fills from it). <see cref="PlannedChannels.Bind"/> checks that the
    /// map is the planned decision's (counts and kind); nothing else is rebuilt.
    /// </summary>
    private WeightTransform StepToRun(WeightTransform step, Func<ChannelFill> templateFill) =>
        step is PlannedChannels planned ? planned.Bind(MapFor(planned.Decision), templateFill) : step;

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

    private sealed class ComputedPayload(TensorInfo target, Action<Stream> write) : TensorPayload(target.Name, target.DType, target.Shape)
    {
        public override bool IsComputed => true;

        public override void WriteTo(Stream destination) => write(destination);
    }
}
