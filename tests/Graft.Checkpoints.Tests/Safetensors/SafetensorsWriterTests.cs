using System.Buffers.Binary;
using System.Text;
using CsCheck;
using Graft.Checkpoints.Safetensors;

namespace Graft.Checkpoints.Tests.Safetensors;

public sealed class SafetensorsWriterTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static TensorPayload P(string name, DType dtype, Shape shape, int seed = 1)
    {
        var bytes = new byte[shape.ElementCount * dtype.ElementSize()];
        new Random(seed).NextBytes(bytes);
        return TensorPayload.FromBytes(name, dtype, shape, bytes);
    }

    private static byte[] Image(IReadOnlyList<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var ms = new MemoryStream();
        SafetensorsWriter.WriteTo(ms, tensors, metadata);
        return ms.ToArray();
    }

    private void AssertNothingButDestinationIn(params string[] expected) =>
        Assert.Equal(expected.Order(StringComparer.Ordinal), Directory.GetFiles(_dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));

    /// <summary>A payload that counts as computed (like a transformed tensor in a transfer) and records when it ran.</summary>
    private sealed class Computed(string name, byte[] bytes, List<string> log) : TensorPayload(name, DType.U8, new Shape(bytes.Length))
    {
        public override bool IsComputed => true;

        public override void WriteTo(Stream destination)
        {
            log.Add(Name);
            destination.Write(bytes);
        }
    }

    [Fact]
    public void WriteTo_ComputedPayloads_GoLastInTheDataButKeepTheirHeaderPlaceAndBytes()
    {
        var log = new List<string>();
        byte[] c1 = [1, 2, 3], c2 = [4, 5];
        var tensors = new List<TensorPayload>
        {
            new Computed("a.computed", c1, log), P("b.streamed", DType.F32, new Shape(3), 7), new Computed("c.computed", c2, log), P("d.streamed", DType.I64, new Shape(2), 8),
        };
        var image = Image(tensors);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(image);
        var header = Encoding.UTF8.GetString(image, 8, headerLength);
        // Header entries keep the order given …
        Assert.True(header.IndexOf("a.computed", StringComparison.Ordinal) < header.IndexOf("b.streamed", StringComparison.Ordinal));
        Assert.True(header.IndexOf("c.computed", StringComparison.Ordinal) < header.IndexOf("d.streamed", StringComparison.Ordinal));
        // … the data puts the streamed tensors first (b then d), then the computed ones in their order (a then c).
        Assert.Contains("\"b.streamed\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}", header);
        Assert.Contains("\"d.streamed\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[12,28]}", header);
        Assert.Contains("\"a.computed\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[28,31]}", header);
        Assert.Contains("\"c.computed\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[31,33]}", header);
        Assert.Equal(["a.computed", "c.computed"], log);

        // And a reader finds every tensor's own bytes, listed in header order.
        var path = _dir.File("mixed.safetensors");
        File.WriteAllBytes(path, image);
        using var reader = CheckpointFile.Open(path);
        Assert.Equal(["a.computed", "b.streamed", "c.computed", "d.streamed"], reader.Tensors.Select(t => t.Name));
        foreach (var (t, expected) in reader.Tensors.Zip(tensors))
        {
            using var ms = new MemoryStream();
            expected.WriteTo(ms);
            var bytes = new byte[t.ByteLength];
            reader.ReadBytes(t, bytes);
            Assert.Equal(ms.ToArray(), bytes);
        }
    }

    [Fact]
    public void WriteTo_TinyTensor_MatchesPythonSafetensorsBytes()
    {
        var data = new byte[8];
        BinaryPrimitives.WriteSingleLittleEndian(data, 1.0f);
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4), 2.0f);
        var written = Image([TensorPayload.FromBytes("a", DType.F32, new Shape(2), data)]);
        Assert.Equal(SafetensorsReaderTests.PythonReferenceFile(), written);
    }

    [Fact]
    public void WriteTo_AnyInput_PadsHeaderWithSpacesToMultipleOf8()
    {
        for (var len = 1; len <= 9; len++)
        {
            var bytes = Image([P(new string('n', len), DType.U8, new Shape(1))]);
            var n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            Assert.Equal(0, n % 8);
            var header = Encoding.UTF8.GetString(bytes, 8, (int)n);
            Assert.EndsWith("}", header.TrimEnd(' '), StringComparison.Ordinal);
            Assert.Equal(8 + n + 1, bytes.Length);
        }
    }

    [Fact]
    public void WriteTo_Metadata_ComesFirstWithKeysSortedOrdinally()
    {
        var bytes = Image([P("w", DType.U8, new Shape(1))], new Dictionary<string, string> { ["b"] = "2", ["B"] = "1", ["a"] = "0" });
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = Encoding.UTF8.GetString(bytes, 8, n).TrimEnd(' ');
        Assert.Equal("{\"__metadata__\":{\"B\":\"1\",\"a\":\"0\",\"b\":\"2\"},\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", header);
    }

    [Fact]
    public void WriteTo_EmptyMetadata_WritesNoMetadataEntry()
    {
        var withEmpty = Image([P("w", DType.U8, new Shape(1))], new Dictionary<string, string>());
        var without = Image([P("w", DType.U8, new Shape(1))]);
        Assert.Equal(without, withEmpty);
        Assert.DoesNotContain("__metadata__", Encoding.UTF8.GetString(without), StringComparison.Ordinal);
    }

    [Fact]
    public void WriteTo_IdenticalInput_ProducesIdenticalBytes()
    {
        var m1 = new Dictionary<string, string> { ["z"] = "1", ["a"] = "2", ["m"] = "3" };
        var m2 = new Dictionary<string, string> { ["m"] = "3", ["z"] = "1", ["a"] = "2" };
        var first = Image([P("x", DType.F32, new Shape(3, 2)), P("y", DType.BF16, new Shape(4))], m1);
        var second = Image([P("x", DType.F32, new Shape(3, 2)), P("y", DType.BF16, new Shape(4))], m2);
        Assert.Equal(first, second);

        var p1 = _dir.File("1.safetensors");
        var p2 = _dir.File("2.safetensors");
        SafetensorsWriter.Write(p1, [P("x", DType.F32, new Shape(3, 2)), P("y", DType.BF16, new Shape(4))], m1);
        SafetensorsWriter.Write(p2, [P("x", DType.F32, new Shape(3, 2)), P("y", DType.BF16, new Shape(4))], m2);
        Assert.Equal(File.ReadAllBytes(p1), File.ReadAllBytes(p2));
        Assert.Equal(first, File.ReadAllBytes(p1));
    }

    [Fact]
    public void Write_EveryDTypeIncludingScalarAndEmpty_RoundTrips()
    {
        var shapes = new[] { Shape.Scalar, new Shape(0), new Shape(3), new Shape(2, 3), new Shape(2, 0, 3), new Shape(1, 1, 1, 5) };
        var payloads = new List<TensorPayload>();
        var expected = new Dictionary<string, byte[]>();
        var seed = 0;
        foreach (var dtype in Enum.GetValues<DType>())
        {
            foreach (var shape in shapes)
            {
                var name = $"{dtype.SafetensorsName()}.{shape.Rank}.{seed}";
                var bytes = new byte[shape.ElementCount * dtype.ElementSize()];
                new Random(seed++).NextBytes(bytes);
                payloads.Add(TensorPayload.FromBytes(name, dtype, shape, bytes));
                expected[name] = bytes;
            }
        }
        var path = _dir.File("all.safetensors");
        SafetensorsWriter.Write(path, payloads, null);
        using var r = SafetensorsReader.Open(path);
        Assert.Equal(payloads.Select(p => new TensorInfo(p.Name, p.DType, p.Shape, p.ByteLength)), r.Tensors);
        foreach (var t in r.Tensors)
        {
            var bytes = new byte[t.ByteLength];
            r.ReadBytes(t, bytes);
            Assert.Equal(expected[t.Name], bytes);
        }
        Assert.Equal(0, r.DataOffset % 8);
    }

    [Fact]
    public void Write_Metadata_RoundTrips()
    {
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["quote\"back\\slash"] = "new\nline\ttab\u0001ctl",
            ["unicode é漢😀"] = "✓ 😀",
            ["empty"] = "",
            ["</script>"] = "<&>'+",
        };
        var path = _dir.File("meta.safetensors");
        SafetensorsWriter.Write(path, [P("w", DType.F16, new Shape(2))], metadata);
        using var r = SafetensorsReader.Open(path);
        Assert.Equal(metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal), r.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal));
    }

    [Fact]
    public void Write_MetadataOnly_RoundTrips()
    {
        var path = _dir.File("meta-only.safetensors");
        SafetensorsWriter.Write(path, [], new Dictionary<string, string> { ["k"] = "v" });
        using var r = SafetensorsReader.Open(path);
        Assert.Empty(r.Tensors);
        Assert.Equal("v", r.Metadata["k"]);
    }

    [Fact]
    public void Write_DuplicateNames_ThrowsArgumentExceptionNamingTensorAndWritesNothing()
    {
        var path = _dir.File("dup.safetensors");
        var ex = Assert.Throws<ArgumentException>(() =>
            SafetensorsWriter.Write(path, [P("a", DType.U8, new Shape(1)), P("conv.weight", DType.U8, new Shape(1)), P("conv.weight", DType.U8, new Shape(2))], null));
        Assert.Contains("'conv.weight'", ex.Message, StringComparison.Ordinal);
        AssertNothingButDestinationIn();
    }

    [Fact]
    public void WriteTo_TensorNamedMetadataKey_ThrowsArgumentException()
    {
        Assert.Throws<InvalidInputException>(() => Image([P("__metadata__", DType.U8, new Shape(1))]));
    }

    [Fact]
    public void WriteTo_NameWithUnpairedSurrogate_ThrowsArgumentException()
    {
        var ex = Assert.Throws<ArgumentException>(() => Image([P("bad\uD800name", DType.U8, new Shape(1))]));
        Assert.Contains("bad", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_PayloadThrowsMidway_LeavesNoFileAndNoTempFile()
    {
        var path = _dir.File("fail.safetensors");
        var ex = Assert.Throws<IOException>(() =>
            SafetensorsWriter.Write(path, [P("a", DType.F32, new Shape(4)), new ThrowingPayload("b", half: true)], null));
        Assert.Equal("disk on fire", ex.Message);
        AssertNothingButDestinationIn();
    }

    [Fact]
    public void Write_PayloadThrowsMidway_LeavesExistingDestinationUntouched()
    {
        var path = _dir.File("keep.safetensors");
        SafetensorsWriter.Write(path, [P("old", DType.I64, new Shape(3))], new Dictionary<string, string> { ["v"] = "1" });
        var before = File.ReadAllBytes(path);
        Assert.Throws<IOException>(() => SafetensorsWriter.Write(path, [P("new", DType.F32, new Shape(4)), new ThrowingPayload("b", half: true)], null));
        Assert.Equal(before, File.ReadAllBytes(path));
        AssertNothingButDestinationIn("keep.safetensors");
    }

    [Fact]
    public void Write_PayloadWritesTooFewBytes_ThrowsInvalidOperationNamingTensorAndLeavesNoFile()
    {
        var path = _dir.File("short.safetensors");
        var ex = Assert.Throws<InvalidOperationException>(() => SafetensorsWriter.Write(path, [new LyingPayload("liar", 15)], null));
        Assert.Contains("'liar'", ex.Message, StringComparison.Ordinal);
        AssertNothingButDestinationIn();
    }

    [Fact]
    public void Write_PayloadWritesTooManyBytes_ThrowsInvalidOperationNamingTensorAndLeavesNoFile()
    {
        var path = _dir.File("long.safetensors");
        var ex = Assert.Throws<InvalidOperationException>(() => SafetensorsWriter.Write(path, [new LyingPayload("liar", 17)], null));
        Assert.Contains("'liar'", ex.Message, StringComparison.Ordinal);
        AssertNothingButDestinationIn();
    }

    [Fact]
    public void Write_FromAnotherCheckpoint_StreamsTensorsUnderNewNames()
    {
        var src = _dir.File("src.safetensors");
        SafetensorsWriter.Write(src, [P("a", DType.F32, new Shape(5)), P("b", DType.I8, new Shape(2, 2))], null);
        var dst = _dir.File("dst.safetensors");
        using (var r = SafetensorsReader.Open(src))
        {
            SafetensorsWriter.Write(dst, r.Tensors.Select(t => TensorPayload.FromCheckpoint(r, t, "copy." + t.Name)), r.Metadata);
        }
        using var d = SafetensorsReader.Open(dst);
        Assert.Equal(["copy.a", "copy.b"], d.Tensors.Select(t => t.Name));
        using var s = SafetensorsReader.Open(src);
        var x = new byte[20];
        var y = new byte[20];
        s.ReadBytes(s.Tensors[0], x);
        d.ReadBytes(d.Tensors[0], y);
        Assert.Equal(x, y);
    }

    private static readonly Gen<DType> GenDType = Gen.Enum<DType>();

    private static readonly Gen<string> GenNameTail =
        Gen.Char["abcXYZ019._-/\"\\ é漢\n"].Array[0, 6].Select(c => new string(c));

    private static readonly Gen<(DType DType, long[] Dims, int Seed, string Tail)> GenTensor =
        Gen.Select(GenDType, Gen.Long[0, 4].Array[0, 4], Gen.Int, GenNameTail);

    private static readonly Gen<Dictionary<string, string>> GenMetadata =
        Gen.Select(GenNameTail, GenNameTail).Array[0, 4].Select(kvs =>
        {
            var d = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (k, v) in kvs)
            {
                d[k] = v;
            }
            return d;
        });

    [Fact]
    public void Write_RandomTensorsAndMetadata_ReadBackIdenticalInfosBytesAndMetadata()
    {
        Gen.Select(GenTensor.Array[0, 6], GenMetadata).Sample((specs, metadata) =>
        {
            var payloads = new List<TensorPayload>();
            var bytes = new List<byte[]>();
            for (var i = 0; i < specs.Length; i++)
            {
                var (dtype, dims, seed, tail) = specs[i];
                var shape = new Shape(dims);
                var b = new byte[shape.ElementCount * dtype.ElementSize()];
                new Random(seed).NextBytes(b);
                payloads.Add(TensorPayload.FromBytes($"t{i}{tail}", dtype, shape, b));
                bytes.Add(b);
            }
            var path = _dir.File($"prop-{Guid.NewGuid():N}.safetensors");
            SafetensorsWriter.Write(path, payloads, metadata);
            using (var r = SafetensorsReader.Open(path))
            {
                Assert.Equal(payloads.Select(p => new TensorInfo(p.Name, p.DType, p.Shape, p.ByteLength)), r.Tensors);
                Assert.Equal(metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal), r.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal));
                for (var i = 0; i < payloads.Count; i++)
                {
                    var read = new byte[r.Tensors[i].ByteLength];
                    r.ReadBytes(r.Tensors[i], read);
                    Assert.Equal(bytes[i], read);
                }
            }
            File.Delete(path);
        }, iter: 200);
    }

    /// <summary>Writes half its bytes (or none), then fails like a broken source would.</summary>
    private sealed class ThrowingPayload(string name, bool half) : TensorPayload(name, DType.F32, new Shape(8))
    {
        public override void WriteTo(Stream destination)
        {
            if (half)
            {
                destination.Write(new byte[ByteLength / 2]);
            }
            throw new IOException("disk on fire");
        }
    }

    /// <summary>Declares 16 bytes and writes another count.</summary>
    private sealed class LyingPayload(string name, int actual) : TensorPayload(name, DType.U8, new Shape(16))
    {
        public override void WriteTo(Stream destination)
        {
            for (var i = 0; i < actual; i++)
            {
                destination.WriteByte((byte)i);
            }
        }
    }
}
