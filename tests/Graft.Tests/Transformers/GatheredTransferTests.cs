using Graft.Checkpoints;
using Graft.Transfer;
using Graft.Transforms;

namespace Graft.Tests.Transformers;

/// <summary>
/// A widening, deepening transfer of a tiny decoder goes through the executor's streaming path (every chain a gather:
/// tiles, repeated K/V heads, zeroed identity blocks) and writes, tensor by tensor, the bytes of the step-by-step path
/// (<see cref="Twins.RunSteps{T}"/> on the plan's chains), across dtypes whose element sizes shrink, stay or grow (the
/// in-place conversion runs forward or backward) and tensors of different sizes reusing one buffer.
/// </summary>
public sealed class GatheredTransferTests : IDisposable
{
    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Rewrites every tensor of a checkpoint in <paramref name="dtype"/> (cast as libtorch casts).</summary>
    private static void Recast(string path, DType dtype)
    {
        var payloads = new List<TensorPayload>();
        using (var reader = CheckpointFile.Open(path))
        {
            foreach (var t in reader.Tensors)
            {
                var bytes = new byte[t.ByteLength];
                reader.ReadBytes(t, bytes);
                payloads.Add(TensorPayload.FromBytes(t.Name, dtype, t.Shape, Twins.Cast(bytes, t.DType, dtype)));
            }
        }
        CheckpointFile.Write(path, payloads);
    }

    [Theory]
    [InlineData(DType.BF16, DType.F32)]
    [InlineData(DType.BF16, DType.BF16)]
    [InlineData(DType.F32, DType.F16)]
    public void Widen_EveryTensorGathered_SameBytesAsStepByStep(DType from, DType to)
    {
        var small = new TinySpec(Layers: 2, KvHeads: 2);
        var src = _dir.Write("src", small, seed: 11);
        var tpl = _dir.Write("tpl", small with { Layers = 3, Hidden = 128, Heads = 16, KvHeads = 4, Intermediate = 256 }, seed: 12);
        Recast(src, from);
        Recast(tpl, to);
        var (output, _) = _dir.Transfer(src, tpl, preserve: true);

        using var s = CheckpointFile.Open(src);
        using var t = CheckpointFile.Open(tpl);
        using var o = CheckpointFile.Open(output);
        var plan = WeightTransfer.Plan(s, t, TransferPresets.KeepFunction);
        int gathered = 0;
        foreach (var p in plan.Targets.Where(p => p.Status == TargetStatus.Adapted))
        {
            Assert.Equal(TargetEngine.Managed, p.Engine);
            Assert.NotNull(GatherChain.TryCompose(Chain.StepsOf(p.Transform), p.Source!.Shape));
            var bytes = new byte[p.Source.ByteLength];
            s.ReadBytes(p.Source, bytes);
            var expected = Twins.RunSteps<float>(bytes, from, p.Source.Shape, Chain.StepsOf(p.Transform), to);
            Assert.True(o.TryGetTensor(p.Target.Name, out var written), p.Target.Name);
            var actual = new byte[written.ByteLength];
            o.ReadBytes(written, actual);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"{p.Target.Name} ({p.Transform.Describe()}): gathered bytes differ from step by step");
            gathered++;
        }
        // Every weight of the wider model is adapted: 2 + 1 layers of 9 tensors, the embedding, the final norm, lm_head.
        Assert.Equal(3 * 9 + 3, gathered);
        Assert.Contains(plan.Targets, p => p.Transform.Op.Contains("zeros", StringComparison.Ordinal));
    }
}
