using System.Text;
using CsCheck;
using Graft.Checkpoints.Tests.Safetensors;
using Graft.Checkpoints.TorchSharpFormat;

namespace Graft.Checkpoints.Tests.TorchSharpFormat;

/// <summary>Builds Module.save images byte by byte, straight from the format description, so tests do not trust the writer.</summary>
internal static class TsBytes
{
    public static void Leb(List<byte> o, ulong v)
    {
        while (v >= 0x80)
        {
            o.Add((byte)(v | 0x80));
            v >>= 7;
        }
        o.Add((byte)v);
    }

    public static void Entry(List<byte> o, string name, ulong code, ulong[] dims, byte[] data)
    {
        var n = Encoding.UTF8.GetBytes(name);
        Leb(o, (ulong)n.Length);
        o.AddRange(n);
        Leb(o, code);
        Leb(o, (ulong)dims.Length);
        foreach (var d in dims)
        {
            Leb(o, d);
        }
        o.AddRange(data);
    }

    public static byte[] Image(params (string Name, ulong Code, ulong[] Dims, byte[] Data)[] entries)
    {
        var o = new List<byte>();
        Leb(o, (ulong)entries.Length);
        foreach (var e in entries)
        {
            Entry(o, e.Name, e.Code, e.Dims, e.Data);
        }
        return o.ToArray();
    }
}

public sealed class TorchSharpReaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Open_HandBuiltFile_ListsTensorsAndReadsBytes()
    {
        var w = Enumerable.Range(0, 6).SelectMany(i => BitConverter.GetBytes((float)i)).ToArray();
        var path = _dir.Write("m.dat", TsBytes.Image(
            ("conv.weight", 6, [2, 3], w),
            ("bn.num_batches_tracked", 4, [], BitConverter.GetBytes(7L)),
            ("empty", 11, [0, 5], [])));
        using var r = TorchSharpReader.Open(path);
        Assert.Equal("torchsharp", r.Format);
        Assert.Equal(["conv.weight", "bn.num_batches_tracked", "empty"], r.Tensors.Select(t => t.Name));
        Assert.Equal(new TensorInfo("conv.weight", DType.F32, new Shape(2, 3), 24), r.Tensors[0]);
        Assert.Equal(new TensorInfo("bn.num_batches_tracked", DType.I64, Shape.Scalar, 8), r.Tensors[1]);
        Assert.Equal(DType.Bool, r.Tensors[2].DType);
        var buf = new byte[24];
        r.ReadBytes(r.Tensors[0], buf);
        Assert.Equal(w, buf);
        var ms = new MemoryStream();
        r.CopyTo(r.Tensors[1], ms);
        Assert.Equal(BitConverter.GetBytes(7L), ms.ToArray());
        Assert.Empty(r.Metadata);
    }

    [Fact]
    public void Open_EveryTypeCode_MapsToDType()
    {
        (ulong Code, DType DType)[] codes =
            [(0, DType.U8), (1, DType.I8), (2, DType.I16), (3, DType.I32), (4, DType.I64), (5, DType.F16), (6, DType.F32), (7, DType.F64), (11, DType.Bool), (15, DType.BF16)];
        var path = _dir.Write("types.dat", TsBytes.Image(codes.Select(c => ($"t{c.Code}", c.Code, new ulong[] { 3 }, new byte[3 * c.DType.ElementSize()])).ToArray()));
        using var r = TorchSharpReader.Open(path);
        Assert.Equal(codes.Select(c => c.DType), r.Tensors.Select(t => t.DType));
    }

    private static readonly DType[] Types = [DType.U8, DType.I8, DType.I16, DType.I32, DType.I64, DType.F16, DType.F32, DType.F64, DType.Bool, DType.BF16];

    [Fact]
    public void Write_ThenOpen_RoundTripsBitExactAndDeterministic()
    {
        var gen =
            from dtype in Gen.Int[0, Types.Length - 1].Select(i => Types[i])
            from dims in Gen.Long[0, 5].Array[0, 4]
            from seed in Gen.Int
            select (dtype, dims, seed);
        gen.Array[1, 5].Sample(specs =>
        {
            var payloads = specs.Select((s, i) =>
            {
                var shape = new Shape(s.dims);
                var bytes = new byte[shape.ElementCount * s.dtype.ElementSize()];
                new Random(s.seed).NextBytes(bytes);
                return TensorPayload.FromBytes($"layer{i}.weight", s.dtype, shape, bytes);
            }).ToList();
            // CsCheck samples in parallel: each sample gets its own files.
            var id = Guid.NewGuid().ToString("N");
            var a = _dir.File(id + "-a.dat");
            var b = _dir.File(id + "-b.dat");
            TorchSharpWriter.Write(a, payloads);
            TorchSharpWriter.Write(b, payloads);
            Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
            using var r = TorchSharpReader.Open(a);
            Assert.Equal(payloads.Count, r.Tensors.Count);
            for (var i = 0; i < payloads.Count; i++)
            {
                var t = r.Tensors[i];
                Assert.Equal((payloads[i].Name, payloads[i].DType, payloads[i].Shape), (t.Name, t.DType, t.Shape));
                var expected = new MemoryStream();
                payloads[i].WriteTo(expected);
                var actual = new byte[t.ByteLength];
                r.ReadBytes(t, actual);
                Assert.Equal(expected.ToArray(), actual);
            }
        }, iter: 50);
    }

    [Fact]
    public void Write_UnsupportedDType_ThrowsInvalidInput()
    {
        var ex = Assert.Throws<InvalidInputException>(() => TorchSharpWriter.Write(_dir.File("u.dat"),
            [TensorPayload.FromBytes("u16", DType.U16, new Shape(1), new byte[2])]));
        Assert.Contains("'u16'", ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir.File("u.dat")));
    }

    [Fact]
    public void Write_DuplicateName_ThrowsArgument()
    {
        var p = TensorPayload.FromBytes("w", DType.U8, new Shape(1), new byte[1]);
        var ex = Assert.Throws<ArgumentException>(() => TorchSharpWriter.Write(_dir.File("d.dat"), [p, p]));
        Assert.Contains("'w'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckpointFile_DatExtension_OpensAsTorchSharp()
    {
        var path = _dir.File("via-registry.dat");
        CheckpointFile.Write(path, [TensorPayload.FromBytes("w", DType.F32, new Shape(1), new byte[4])]);
        Assert.Equal("torchsharp", CheckpointFile.DetectFormat(path).Name);
        using var r = CheckpointFile.Open(path);
        Assert.Equal("torchsharp", r.Format);
        Assert.Single(r.Tensors);
    }
}

/// <summary>One named negative test per <see cref="CheckpointErrorKind"/> the TorchSharp reader raises.</summary>
public sealed class TorchSharpReaderValidationTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private void Refuse(byte[] bytes, CheckpointErrorKind kind, string? tensor = null) =>
        Refusal.Expect(TorchSharpReader.Open, _dir.Write("hostile.dat", bytes), kind, tensor);

    private static byte[] Raw(Action<List<byte>> build)
    {
        var o = new List<byte>();
        build(o);
        return o.ToArray();
    }

    [Fact]
    public void Open_EmptyFile_ThrowsTooShort() => Refuse([], CheckpointErrorKind.TooShort);

    [Fact]
    public void Open_VarintOverTenBytes_ThrowsCorrupt() =>
        Refuse([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 0], CheckpointErrorKind.Corrupt);

    [Fact]
    public void Open_VarintOver63Bits_ThrowsCorrupt() =>
        Refuse([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], CheckpointErrorKind.Corrupt);

    [Fact]
    public void Open_EntryCountLargerThanBytesLeft_ThrowsCorrupt() =>
        Refuse(Raw(o => { TsBytes.Leb(o, 1_000_000_000); o.AddRange(new byte[10]); }), CheckpointErrorKind.Corrupt);

    [Fact]
    public void Open_NameLengthBeyondFile_ThrowsOutOfBounds() =>
        Refuse(Raw(o => { TsBytes.Leb(o, 1); TsBytes.Leb(o, 1000); o.AddRange("abc"u8.ToArray()); }), CheckpointErrorKind.OutOfBounds);

    [Fact]
    public void Open_NameNotUtf8_ThrowsHeaderNotUtf8() =>
        Refuse(Raw(o => { TsBytes.Leb(o, 1); TsBytes.Leb(o, 2); o.AddRange([0xC0, 0xAF]); TsBytes.Leb(o, 0); TsBytes.Leb(o, 0); o.Add(1); }), CheckpointErrorKind.HeaderNotUtf8);

    [Fact]
    public void Open_UnknownTypeCode_ThrowsUnknownDType() =>
        Refuse(TsBytes.Image(("z", 9, [1], new byte[8])), CheckpointErrorKind.UnknownDType, "z");

    [Fact]
    public void Open_HugeRank_ThrowsInvalidShape() =>
        Refuse(Raw(o => { TsBytes.Leb(o, 1); TsBytes.Entry(o, "r", 6, [], []); o.RemoveAt(o.Count - 1); TsBytes.Leb(o, 1UL << 40); o.AddRange(new byte[16]); }), CheckpointErrorKind.InvalidShape, "r");

    [Fact]
    public void Open_ShapeTimesSizeOverflows_ThrowsSizeOverflow() =>
        Refuse(TsBytes.Image(("big", 7, [1UL << 31, 1UL << 31, 4], [])), CheckpointErrorKind.SizeOverflow, "big");

    [Fact]
    public void Open_HugeShapeInSmallFile_ThrowsOutOfBounds() =>
        Refuse(TsBytes.Image(("w", 6, [1UL << 40], new byte[16])), CheckpointErrorKind.OutOfBounds, "w");

    [Fact]
    public void Open_TruncatedData_ThrowsOutOfBounds() =>
        Refuse(TsBytes.Image(("w", 6, [4], new byte[15])), CheckpointErrorKind.OutOfBounds, "w");

    [Fact]
    public void Open_TruncatedInsideHeader_ThrowsOutOfBounds() =>
        Refuse(TsBytes.Image(("w", 6, [4], new byte[16]))[..4], CheckpointErrorKind.OutOfBounds);

    [Fact]
    public void Open_TrailingBytes_ThrowsGapInData() =>
        Refuse(TsBytes.Image(("w", 6, [1], new byte[4])).Concat(new byte[] { 0 }).ToArray(), CheckpointErrorKind.GapInData);

    [Fact]
    public void Open_DuplicateName_ThrowsDuplicateName() =>
        Refuse(TsBytes.Image(("w", 0, [1], [1]), ("w", 0, [1], [2])), CheckpointErrorKind.DuplicateName, "w");
}
