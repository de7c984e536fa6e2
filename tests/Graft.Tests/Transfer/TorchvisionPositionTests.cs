using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Tests.Transfer;

/// <summary>
/// Issue 20, item 6: a torchvision-named ViT (<c>encoder.pos_embedding</c>) is resampled as torchvision's own
/// <c>interpolate_embeddings</c> does (bicubic, <c>align_corners=True</c>, no antialiasing), and the plan says so; the
/// expected values come from torchvision 0.14 (tests/fixtures/make_torchvision_pos_fixture.py).
/// </summary>
public sealed class TorchvisionPositionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("graft-tv-pos-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static float[] Floats(ICheckpointReader reader, TensorInfo info)
    {
        var bytes = new byte[info.ByteLength];
        reader.ReadBytes(info, bytes);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();
    }

    [Fact]
    public void VitB16At224To384_PositionGridEqualsTorchvisionsInterpolateEmbeddings()
    {
        using var fixture = CheckpointFile.Open(Path.Combine(Graft.TestSupport.RepoPaths.Fixtures("vit"), "torchvision_pos.pt"));
        var source = fixture.Tensors.Single(t => t.Name == "source");
        var expected = fixture.Tensors.Single(t => t.Name == "expected");
        Assert.Equal(new Shape(1, 577, 8), expected.Shape);
        string src = Path.Combine(_dir, "vit224.safetensors"), tpl = Path.Combine(_dir, "vit384.safetensors"), output = Path.Combine(_dir, "out.safetensors");
        CheckpointFile.Write(src, [TensorPayload.FromCheckpoint(fixture, source, "encoder.pos_embedding")]);
        CheckpointFile.Write(tpl, [TensorPayload.FromBytes("encoder.pos_embedding", DType.F32, expected.Shape, new byte[expected.ByteLength])]);

        var report = Graft.Transfer.WeightTransfer.Files(src, tpl, output);
        var target = Assert.Single(report.Targets);
        Assert.Equal(TargetStatus.Adapted, target.Status);
        Assert.StartsWith("pos: 14×14 → 24×24, 1 prefix token kept", target.Reason, StringComparison.Ordinal);
        Assert.Contains("corners aligned, not antialiased, as torchvision's interpolate_embeddings", target.Reason, StringComparison.Ordinal);

        using var written = CheckpointFile.Open(output);
        var got = Floats(written, written.Tensors.Single());
        var want = Floats(fixture, expected);
        double worst = 0;
        for (int i = 0; i < want.Length; i++)
        {
            Assert.True(float.IsFinite(got[i]), $"value {i} is {got[i]}");
            worst = Math.Max(worst, Math.Abs(got[i] - want[i]));
        }
        Assert.True(worst < 1e-5, $"max |diff| {worst}");
        // The class token is kept bit for bit.
        Assert.Equal(Floats(fixture, source)[..8], got[..8]);
    }

    [Fact]
    public void TimmNamedPositions_StayWithTimmsConvention()
    {
        static TensorInfo T(string name, params long[] shape) => new(name, DType.F32, new Shape(shape), new Shape(shape).ElementCount * 4);
        var plan = TransferPlanner.Plan([T("cls_token", 1, 1, 8), T("pos_embed", 1, 197, 8)], [T("cls_token", 1, 1, 8), T("pos_embed", 1, 577, 8)], TransferPolicy.Default);
        var pos = plan.Targets.Single(t => t.Target.Name == "pos_embed");
        Assert.Contains("antialiased, as timm's resample_abs_pos_embed", pos.Reason, StringComparison.Ordinal);
    }
}
