using System.Buffers.Binary;
using Graft.Checkpoints.Safetensors;

namespace Graft.Checkpoints.Tests.Safetensors;

public sealed class SafetensorsReaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// The exact bytes Python's <c>safetensors.torch.save_file({"a": torch.tensor([1.0, 2.0])})</c> produces, built from
    /// the specification: 56-byte header padded with spaces to 56 (already a multiple of 8), then two little-endian floats.
    /// </summary>
    internal static byte[] PythonReferenceFile()
    {
        var header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"u8.ToArray();
        var padded = (header.Length + 7) / 8 * 8;
        var file = new byte[8 + padded + 8];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)padded);
        header.CopyTo(file, 8);
        for (var i = 8 + header.Length; i < 8 + padded; i++)
        {
            file[i] = (byte)' ';
        }
        BinaryPrimitives.WriteSingleLittleEndian(file.AsSpan(8 + padded), 1.0f);
        BinaryPrimitives.WriteSingleLittleEndian(file.AsSpan(8 + padded + 4), 2.0f);
        return file;
    }

    [Fact]
    public void Open_FileAsPythonSafetensorsWritesIt_ReadsTensor()
    {
        var path = _dir.Write("ref.safetensors", PythonReferenceFile());
        using var r = SafetensorsReader.Open(path);
        var t = Assert.Single(r.Tensors);
        Assert.Equal(new TensorInfo("a", DType.F32, new Shape(2), 8), t);
        Assert.Empty(r.Metadata);
        Assert.Equal("safetensors", r.Format);
        Assert.Equal(path, r.Path);
        Assert.Equal(8 + 56, r.DataOffset);
        Assert.Equal(64, r.GetTensorOffset(t));
        var bytes = new byte[8];
        r.ReadBytes(t, bytes);
        Assert.Equal(1.0f, BinaryPrimitives.ReadSingleLittleEndian(bytes));
        Assert.Equal(2.0f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4)));
    }

    [Fact]
    public void Open_UnpaddedHeader_ReadsTensor()
    {
        // Padding is a writer convention, not a rule: an unaligned header is still a valid file.
        var path = _dir.Write("unpadded.safetensors",
            StBytes.Image("{\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}", [7, 8, 9], pad: false));
        using var r = SafetensorsReader.Open(path);
        Assert.True(r.TryGetTensor("b", out var b));
        var bytes = new byte[3];
        r.ReadBytes(b, bytes);
        Assert.Equal([7, 8, 9], bytes);
    }

    [Fact]
    public void Open_TensorsListedOutOfDataOrder_KeepsHeaderOrderAndOffsets()
    {
        var data = StBytes.Sequence(16);
        var path = _dir.Write("order.safetensors", StBytes.Image(
            "{\"z\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
            data));
        using var r = SafetensorsReader.Open(path);
        Assert.Equal(["z", "a"], r.Tensors.Select(t => t.Name));
        Assert.Equal("pt", r.Metadata["format"]);
        var z = new byte[8];
        r.ReadBytes(r.Tensors[0], z);
        Assert.Equal(data[8..], z);
        Assert.Equal(r.DataOffset + 8, r.GetTensorOffset(r.Tensors[0]));
    }

    [Fact]
    public void Open_TensorsOfOneShape_ShareOneShape_AndFieldsInAnyOrderAndSpellingOfDTypeRead()
    {
        // A header of many tensors repeats a few shapes: one Shape object each, not one per tensor. Field names and
        // dtypes are compared as UTF-8 (escaped spellings included), never made into strings.
        var path = _dir.Write("shapes.safetensors", StBytes.Image(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"data_offsets\":[8,16],\"shape\":[2],\"\\u0064type\":\"\\u0046\\u0033\\u0032\"},\"c\":{\"shape\":[1,2],\"dtype\":\"BF16\",\"data_offsets\":[16,20]}}",
            StBytes.Sequence(20)));
        using var r = SafetensorsReader.Open(path);
        Assert.Same(r.Tensors[0].Shape, r.Tensors[1].Shape);
        Assert.Equal(DType.F32, r.Tensors[1].DType);
        Assert.Equal(DType.BF16, r.Tensors[2].DType);
        Assert.Equal(new Shape(1, 2), r.Tensors[2].Shape);
    }

    [Fact]
    public void Open_EmptyAndScalarTensors_AreLegal()
    {
        var data = StBytes.Sequence(8);
        var path = _dir.Write("edge.safetensors", StBytes.Image(
            "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},\"e2\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[8,8]}}",
            data));
        using var r = SafetensorsReader.Open(path);
        Assert.Equal(0, r.Tensors[0].ByteLength);
        Assert.Equal(Shape.Scalar, r.Tensors[1].Shape);
        Assert.Equal(1, r.Tensors[1].ElementCount);
        r.ReadBytes(r.Tensors[0], []);
        var s = new byte[8];
        r.ReadBytes(r.Tensors[1], s);
        Assert.Equal(data, s);
        using var ms = new MemoryStream();
        r.CopyTo(r.Tensors[2], ms);
        Assert.Equal(0, ms.Length);
    }

    [Fact]
    public void Open_EmptyCheckpoint_HasNoTensors()
    {
        var path = _dir.Write("empty.safetensors", StBytes.Image("{}"));
        using var r = SafetensorsReader.Open(path);
        Assert.Empty(r.Tensors);
        Assert.Empty(r.Metadata);
    }

    [Fact]
    public void Open_NamesWithEscapesAndUnicode_AreDecoded()
    {
        var path = _dir.Write("names.safetensors", StBytes.Image(
            "{\"layer\\\"1\\\\w\\u00e9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"é漢😀\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
            [1, 2]));
        using var r = SafetensorsReader.Open(path);
        Assert.Equal(["layer\"1\\wé", "é漢😀"], r.Tensors.Select(t => t.Name));
    }

    [Fact]
    public void Open_FileHeldOpenForReadingElsewhere_OpensWithoutAskingForWrite()
    {
        var path = _dir.Write("shared.safetensors", PythonReferenceFile());
        using var other = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        using var r1 = SafetensorsReader.Open(path);
        using var r2 = SafetensorsReader.Open(path);
        Assert.Equal(r1.Tensors, r2.Tensors);
    }

    [Fact]
    public void ReadBytes_DestinationOfWrongLength_ThrowsArgumentException()
    {
        var path = _dir.Write("ref.safetensors", PythonReferenceFile());
        using var r = SafetensorsReader.Open(path);
        var ex = Assert.Throws<ArgumentException>(() => r.ReadBytes(r.Tensors[0], new byte[7]));
        Assert.Contains("'a'", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => r.ReadBytes(r.Tensors[0], new byte[9]));
    }

    [Fact]
    public void ReadBytes_TensorFromAnotherReader_ThrowsArgumentException()
    {
        var path = _dir.Write("ref.safetensors", PythonReferenceFile());
        using var r = SafetensorsReader.Open(path);
        var foreignName = new TensorInfo("b", DType.F32, new Shape(2), 8);
        var foreignShape = new TensorInfo("a", DType.F32, new Shape(1, 2), 8);
        var foreignDType = new TensorInfo("a", DType.I32, new Shape(2), 8);
        Assert.Throws<ArgumentException>(() => r.ReadBytes(foreignName, new byte[8]));
        Assert.Throws<ArgumentException>(() => r.ReadBytes(foreignShape, new byte[8]));
        Assert.Throws<ArgumentException>(() => r.CopyTo(foreignDType, Stream.Null));
        Assert.Throws<ArgumentException>(() => r.GetTensorOffset(foreignName));
    }

    [Fact]
    public void ReadBytes_AfterDispose_ThrowsObjectDisposedException()
    {
        var path = _dir.Write("ref.safetensors", PythonReferenceFile());
        var r = SafetensorsReader.Open(path);
        var t = r.Tensors[0];
        r.Dispose();
        r.Dispose();
        Assert.Throws<ObjectDisposedException>(() => r.ReadBytes(t, new byte[8]));
        Assert.Throws<ObjectDisposedException>(() => r.CopyTo(t, Stream.Null));
    }

    [Fact]
    public void CopyTo_TensorLargerThanChunk_StreamsSameBytesAsReadBytesInBoundedWrites()
    {
        var length = 3 * SafetensorsReader.CopyChunkSize + 5;
        var data = new byte[length + 4];
        new Random(42).NextBytes(data);
        var header = $"{{\"small\":{{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}},\"big\":{{\"dtype\":\"U8\",\"shape\":[{length}],\"data_offsets\":[4,{length + 4}]}}}}";
        var path = _dir.Write("big.safetensors", StBytes.Image(header, data));
        using var r = SafetensorsReader.Open(path);
        Assert.True(r.TryGetTensor("big", out var big));
        var direct = new byte[length];
        r.ReadBytes(big, direct);
        var sink = new RecordingStream();
        r.CopyTo(big, sink);
        Assert.Equal(direct, sink.ToArray());
        Assert.Equal(data[4..], direct);
        Assert.True(sink.Writes > 1);
        Assert.True(sink.LargestWrite <= SafetensorsReader.CopyChunkSize, $"largest write {sink.LargestWrite}");
    }

    [Fact]
    public void TryGetTensor_UnknownName_ReturnsFalse()
    {
        var path = _dir.Write("ref.safetensors", PythonReferenceFile());
        using var r = SafetensorsReader.Open(path);
        Assert.False(r.TryGetTensor("__metadata__", out _));
        Assert.False(r.TryGetTensor("b", out _));
    }

    [Fact]
    public void Open_MissingFile_ThrowsFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => SafetensorsReader.Open(_dir.File("nope.safetensors")));
    }

    /// <summary>A write-only sink that remembers how large each write was.</summary>
    private sealed class RecordingStream : Stream
    {
        private readonly MemoryStream _inner = new();

        public int Writes { get; private set; }

        public int LargestWrite { get; private set; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => _inner.Length;

        public override long Position
        {
            get => _inner.Position;
            set => throw new NotSupportedException();
        }

        public byte[] ToArray() => _inner.ToArray();

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Writes++;
            LargestWrite = Math.Max(LargestWrite, buffer.Length);
            _inner.Write(buffer);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    }
}
