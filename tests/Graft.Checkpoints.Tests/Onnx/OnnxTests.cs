using System.Security.Cryptography;
using System.Text.Json;
using Google.Protobuf;
using Graft.Checkpoints.Onnx;
using Graft.Checkpoints.Tests.PyTorch;
using Graft.TestSupport;

namespace Graft.Checkpoints.Tests.Onnx;

/// <summary>Builds ONNX protobuf bytes by hand, so hostile cases state exactly what they feed the reader.</summary>
internal static class OnnxBytes
{
    public static byte[] Message(Action<CodedOutputStream> write)
    {
        var ms = new MemoryStream();
        var cos = new CodedOutputStream(ms);
        write(cos);
        cos.Flush();
        return ms.ToArray();
    }

    public static void Bytes(CodedOutputStream c, int field, byte[] value)
    {
        c.WriteTag(field, WireFormat.WireType.LengthDelimited);
        c.WriteBytes(ByteString.CopyFrom(value));
    }

    public static byte[] Entry(string key, string value) => Message(c =>
    {
        c.WriteTag(1, WireFormat.WireType.LengthDelimited);
        c.WriteString(key);
        c.WriteTag(2, WireFormat.WireType.LengthDelimited);
        c.WriteString(value);
    });

    /// <summary>A TensorProto: dims (packed), data_type, name, then whatever <paramref name="data"/> adds.</summary>
    public static byte[] Tensor(string name, int dataType, long[] dims, Action<CodedOutputStream> data) => Message(c =>
    {
        var packed = Message(p => { foreach (var d in dims) { p.WriteInt64(d); } });
        Bytes(c, 1, packed);
        c.WriteTag(2, WireFormat.WireType.Varint);
        c.WriteInt32(dataType);
        c.WriteTag(8, WireFormat.WireType.LengthDelimited);
        c.WriteString(name);
        data(c);
    });

    public static byte[] External(string name, long[] dims, string location, long? offset = null, long? length = null) =>
        Tensor(name, 1, dims, c =>
        {
            Bytes(c, 13, Entry("location", location));
            if (offset is { } o)
            {
                Bytes(c, 13, Entry("offset", o.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }
            if (length is { } l)
            {
                Bytes(c, 13, Entry("length", l.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }
            c.WriteTag(14, WireFormat.WireType.Varint);
            c.WriteEnum(1);
        });

    public static byte[] Raw(string name, long[] dims, byte[] raw, int dataType = 1) => Tensor(name, dataType, dims, c => Bytes(c, 9, raw));

    /// <summary>ModelProto { ir_version 8; graph { node-ish field 1; initializers...; name } }.</summary>
    public static byte[] Model(params byte[][] initializers) => Message(c =>
    {
        c.WriteTag(1, WireFormat.WireType.Varint);
        c.WriteInt64(8);
        var graph = Message(g =>
        {
            Bytes(g, 1, [0x22, 0x01, 0x78]); // a NodeProto: op_type "x"; copied as is
            foreach (var i in initializers)
            {
                Bytes(g, 5, i);
            }
            g.WriteTag(2, WireFormat.WireType.LengthDelimited);
            g.WriteString("g");
        });
        Bytes(c, 7, graph);
    });
}

public sealed class OnnxReaderFixtureTests
{
    private static string Dir => Path.Combine(Fixtures.Root, "onnx");

    public static TheoryData<string> Files => new() { "tiny.onnx", "typed.onnx", "external.onnx" };

    [Theory]
    [MemberData(nameof(Files))]
    public void Open_Fixture_EveryInitializerMatchesManifestBitForBit(string file)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "manifest.json")));
        var expected = manifest.RootElement.GetProperty(file).EnumerateArray().ToList();
        using var r = OnnxReader.Open(Path.Combine(Dir, file));
        Assert.Equal(expected.Select(e => e.GetProperty("name").GetString()), r.Tensors.Select(t => t.Name));
        foreach (var (t, e) in r.Tensors.Zip(expected))
        {
            Assert.True(DTypes.TryParseSafetensors(e.GetProperty("dtype").GetString()!, out var dtype));
            Assert.Equal(dtype, t.DType);
            Assert.Equal(new Shape(e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64())), t.Shape);
            var bytes = new byte[t.ByteLength];
            r.ReadBytes(t, bytes);
            Assert.Equal(e.GetProperty("sha256").GetString(), Convert.ToHexStringLower(SHA256.HashData(bytes)));
            var ms = new MemoryStream();
            r.CopyTo(t, ms);
            Assert.Equal(bytes, ms.ToArray());
            Assert.Equal(e.GetProperty("storage").GetString() == "external", r.IsExternal(t));
        }
    }

    [Fact]
    public void Open_Typed_ExposesModelMetadata()
    {
        using var r = CheckpointFile.Open(Path.Combine(Dir, "typed.onnx"));
        Assert.Equal("onnx", r.Format);
        Assert.Equal("graft", r.Metadata["author"]);
        Assert.Equal("graft-fixtures", r.Metadata["producer_name"]);
    }

    [Fact]
    public void Write_ThroughFormat_ThrowsNotSupportedPointingToReplaceInitializers()
    {
        var ex = Assert.Throws<NotSupportedException>(() => OnnxFormat.Instance.Write("x.onnx", []));
        Assert.Contains("ReplaceInitializers", ex.Message, StringComparison.Ordinal);
    }
}

public sealed class OnnxWriterTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Fixture(string name) => Path.Combine(Fixtures.Root, "onnx", name);

    private static TensorPayload Pattern(TensorInfo t, byte seed) =>
        TensorPayload.FromBytes(t.Name, t.DType, t.Shape, Enumerable.Range(0, (int)t.ByteLength).Select(i => (byte)(i * 7 + seed)).ToArray());

    private static byte[] Read(OnnxReader r, TensorInfo t)
    {
        var b = new byte[t.ByteLength];
        r.ReadBytes(t, b);
        return b;
    }

    /// <summary>Copies a fixture (and its external data) into the temp folder, so outputs can sit beside it.</summary>
    private string Copy(string name)
    {
        foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Root, "onnx")))
        {
            File.Copy(f, _dir.File(Path.GetFileName(f)), overwrite: true);
        }
        return _dir.File(name);
    }

    [Theory]
    [InlineData("tiny.onnx")]
    [InlineData("typed.onnx")]
    [InlineData("external.onnx")]
    public void ReplaceInitializers_ThenReopen_ReplacedChangeOthersStay(string file)
    {
        var source = Copy(file);
        var output = _dir.File("out.onnx");
        var sourceBytes = File.ReadAllBytes(source);
        var externalBefore = File.Exists(_dir.File("external.onnx.data")) ? File.ReadAllBytes(_dir.File("external.onnx.data")) : [];
        using var before = OnnxReader.Open(source);
        var replaced = before.Tensors.Where((t, i) => i % 2 == 0 && t.ByteLength > 0).ToList();
        var payloads = replaced.Select(t => Pattern(t, 3)).ToList();
        OnnxWriter.ReplaceInitializers(source, output, payloads);

        using var after = OnnxReader.Open(output);
        Assert.Equal(before.Tensors, after.Tensors);
        foreach (var t in after.Tensors)
        {
            var p = payloads.FirstOrDefault(x => x.Name == t.Name);
            if (p is null)
            {
                Assert.Equal(Read(before, t), Read(after, t));
            }
            else
            {
                var ms = new MemoryStream();
                p.WriteTo(ms);
                Assert.Equal(ms.ToArray(), Read(after, t));
                Assert.Equal(before.IsExternal(t), after.IsExternal(t));
            }
        }
        Assert.Equal(before.Metadata, after.Metadata);
        // The source and its external data are never written.
        Assert.Equal(sourceBytes, File.ReadAllBytes(source));
        if (externalBefore.Length > 0)
        {
            Assert.Equal(externalBefore, File.ReadAllBytes(_dir.File("external.onnx.data")));
        }
        AssertSameOutsideInitializers(before, after, payloads.Select(p => p.Name).ToHashSet());
    }

    private const string OnnxCheckScript = """
import hashlib, json, sys
import onnx
from onnx import numpy_helper
onnx.checker.check_model(sys.argv[1], full_check=True)
model = onnx.load(sys.argv[1])
print(json.dumps({i.name: hashlib.sha256(numpy_helper.to_array(i).tobytes()).hexdigest() for i in model.graph.initializer}))
""";

    [PythonOnnxFact]
    public void ReplaceInitializers_OutputPassesTheOnnxCheckerAndOnnxReadsTheNewValues()
    {
        // The reference implementation (Debian's python3-onnx) validates the model Graft wrote, external data included,
        // and reads every initializer with the bytes Graft put there.
        foreach (var file in new[] { "tiny.onnx", "typed.onnx", "external.onnx" })
        {
            var source = Copy(file);
            var output = _dir.File("checked-" + file);
            using var before = OnnxReader.Open(source);
            var payloads = before.Tensors.Where(t => t.ByteLength > 0 && t.DType.IsFloatingPoint()).Select(t => Pattern(t, 5)).ToList();
            Assert.NotEmpty(payloads);
            OnnxWriter.ReplaceInitializers(source, output, payloads);

            var (code, stdout, stderr) = PythonTorch.Run(PythonTorch.Required("onnx"),
                "import sys; sys.argv = ['x', " + JsonSerializer.Serialize(output) + "]; exec(" + JsonSerializer.Serialize(OnnxCheckScript) + ")", TimeSpan.FromMinutes(2));
            Assert.True(code == 0, $"{file}: onnx rejected Graft's output: {stderr}");
            var hashes = JsonSerializer.Deserialize<Dictionary<string, string>>(stdout.Trim().Split('\n')[^1])!;
            using var after = OnnxReader.Open(output);
            Assert.Equal(after.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal), hashes.Keys.Order(StringComparer.Ordinal));
            foreach (var t in after.Tensors)
            {
                Assert.True(Convert.ToHexStringLower(SHA256.HashData(Read(after, t))) == hashes[t.Name], $"{file}: onnx reads other bytes for '{t.Name}'");
            }
        }
    }

    /// <summary>Every model field but the graph, every graph field but replaced initializers, and the replaced ones' non-data fields are byte-identical.</summary>
    private static void AssertSameOutsideInitializers(OnnxReader a, OnnxReader b, HashSet<string> replaced)
    {
        static byte[] Slice(OnnxReader r, ProtobufField f) => r.Bytes(f.TagStart, (int)(f.End - f.TagStart)).ToArray();
        Assert.Equal(a.ModelFields.Count, b.ModelFields.Count);
        foreach (var (fa, fb) in a.ModelFields.Zip(b.ModelFields))
        {
            Assert.Equal(fa.Number, fb.Number);
            if (fa.Number != 7)
            {
                Assert.Equal(Slice(a, fa), Slice(b, fb));
            }
        }
        Assert.Equal(a.GraphFields.Count, b.GraphFields.Count);
        var initA = a.Initializers.ToDictionary(i => i.GraphField.TagStart);
        var initB = b.Initializers.ToDictionary(i => i.GraphField.TagStart);
        foreach (var (fa, fb) in a.GraphFields.Zip(b.GraphFields))
        {
            Assert.Equal(fa.Number, fb.Number);
            if (fa.Number == 5 && replaced.Contains(initA[fa.TagStart].Info.Name))
            {
                int[] data = [4, 5, 6, 7, 9, 10, 11, 13, 14];
                var keptA = a.TensorFields(initA[fa.TagStart]).Where(f => !data.Contains(f.Number)).Select(f => Slice(a, f));
                var keptB = b.TensorFields(initB[fb.TagStart]).Where(f => !data.Contains(f.Number)).Select(f => Slice(b, f));
                Assert.Equal(keptA, keptB);
            }
            else
            {
                Assert.Equal(Slice(a, fa), Slice(b, fb));
            }
        }
    }

    [Fact]
    public void ReplaceInitializers_NothingReplaced_CopiesEveryByte()
    {
        var output = _dir.File("same.onnx");
        OnnxWriter.ReplaceInitializers(Fixture("tiny.onnx"), output, []);
        Assert.Equal(File.ReadAllBytes(Fixture("tiny.onnx")), File.ReadAllBytes(output));
    }

    [Fact]
    public void ReplaceInitializers_External_WritesNewDataFileBesideOutput()
    {
        var source = Copy("external.onnx");
        using var r = OnnxReader.Open(source);
        var ext = r.Tensors.First(r.IsExternal);
        OnnxWriter.ReplaceInitializers(source, _dir.File("new.onnx"), [Pattern(ext, 9)]);
        Assert.True(File.Exists(_dir.File("new.onnx.data")));
        Assert.Equal(ext.ByteLength, new FileInfo(_dir.File("new.onnx.data")).Length);
    }

    [Fact]
    public void ReplaceInitializers_WrongShape_ThrowsArgumentNamingTensor()
    {
        using var r = OnnxReader.Open(Fixture("tiny.onnx"));
        var t = r.Tensors[0];
        var bad = TensorPayload.FromBytes(t.Name, t.DType, new Shape(t.ElementCount), new byte[t.ByteLength]);
        var ex = Assert.Throws<ArgumentException>(() => OnnxWriter.ReplaceInitializers(Fixture("tiny.onnx"), _dir.File("o.onnx"), [bad]));
        Assert.Contains($"'{t.Name}'", ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir.File("o.onnx")));
    }

    [Fact]
    public void ReplaceInitializers_WrongDType_ThrowsArgumentNamingTensor()
    {
        using var r = OnnxReader.Open(Fixture("tiny.onnx"));
        var t = r.Tensors[0];
        var bad = TensorPayload.FromBytes(t.Name, DType.I32, t.Shape, new byte[t.ByteLength]);
        var ex = Assert.Throws<ArgumentException>(() => OnnxWriter.ReplaceInitializers(Fixture("tiny.onnx"), _dir.File("o.onnx"), [bad]));
        Assert.Contains($"'{t.Name}'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReplaceInitializers_UnknownName_ThrowsArgumentNamingTensor()
    {
        var bad = TensorPayload.FromBytes("nope", DType.F32, new Shape(1), new byte[4]);
        var ex = Assert.Throws<ArgumentException>(() => OnnxWriter.ReplaceInitializers(Fixture("tiny.onnx"), _dir.File("o.onnx"), [bad]));
        Assert.Contains("'nope'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReplaceInitializers_OutputIsSource_ThrowsArgument()
    {
        var source = Copy("tiny.onnx");
        Assert.Throws<ArgumentException>(() => OnnxWriter.ReplaceInitializers(source, source, []));
    }

    [Fact]
    public void ReplaceInitializers_KeptExternalElsewhere_ThrowsInvalidInput()
    {
        var source = Copy("external.onnx");
        var other = Directory.CreateDirectory(_dir.File("other")).FullName;
        Assert.Throws<InvalidInputException>(() => OnnxWriter.ReplaceInitializers(source, Path.Combine(other, "o.onnx"), []));
    }
}

/// <summary>One named negative test per rule the ONNX reader enforces, on models built by hand.</summary>
public sealed class OnnxReaderValidationTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private CheckpointFormatException Refuse(byte[] model, CheckpointErrorKind kind, string? tensor = null, string? folder = null)
    {
        var path = Path.Combine(folder ?? _dir.Path, "hostile.onnx");
        File.WriteAllBytes(path, model);
        return Refusal.Expect(OnnxReader.Open, path, kind, tensor);
    }

    private void Data(string name, int bytes) => File.WriteAllBytes(_dir.File(name), new byte[bytes]);

    [Fact]
    public void Open_HandBuiltExternal_ReadsFromOffset()
    {
        File.WriteAllBytes(_dir.File("w.bin"), [9, 9, 1, 2, 3, 4, 5, 6, 7, 8]);
        File.WriteAllBytes(_dir.File("m.onnx"), OnnxBytes.Model(OnnxBytes.External("w", [2], "w.bin", offset: 2, length: 8)));
        using var r = OnnxReader.Open(_dir.File("m.onnx"));
        var b = new byte[8];
        r.ReadBytes(r.Tensors[0], b);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, b);
    }

    [Fact]
    public void Open_ExternalInSubfolder_IsAccepted()
    {
        Directory.CreateDirectory(_dir.File("weights"));
        Data("weights/w.bin", 8);
        File.WriteAllBytes(_dir.File("m.onnx"), OnnxBytes.Model(OnnxBytes.External("w", [2], "weights/w.bin")));
        using var r = OnnxReader.Open(_dir.File("m.onnx"));
        Assert.Single(r.Tensors);
    }

    [Fact]
    public void Open_EmptyFile_ThrowsTooShort() => Refuse([], CheckpointErrorKind.TooShort);

    [Theory]
    [InlineData("/etc/passwd")]
    [InlineData("/tmp/w.bin")]
    public void Open_ExternalAbsolutePath_ThrowsUnsafePath(string location) =>
        Refuse(OnnxBytes.Model(OnnxBytes.External("w", [2], location)), CheckpointErrorKind.UnsafePath, "w");

    [Theory]
    [InlineData("../w.bin")]
    [InlineData("a/../../w.bin")]
    [InlineData("a/../w.bin")]
    [InlineData("..\\w.bin")]
    public void Open_ExternalDotDot_ThrowsUnsafePath(string location) =>
        Refuse(OnnxBytes.Model(OnnxBytes.External("w", [2], location)), CheckpointErrorKind.UnsafePath, "w");

    [Fact]
    public void Open_ExternalSymlinkLeavingFolder_ThrowsUnsafePath()
    {
        var inner = Directory.CreateDirectory(_dir.File("model")).FullName;
        Data("secret.bin", 8);
        File.CreateSymbolicLink(Path.Combine(inner, "w.bin"), _dir.File("secret.bin"));
        Refuse(OnnxBytes.Model(OnnxBytes.External("w", [2], "w.bin")), CheckpointErrorKind.UnsafePath, "w", inner);
    }

    [Fact]
    public void Open_ExternalThroughSymlinkedFolderLeaving_ThrowsUnsafePath()
    {
        var inner = Directory.CreateDirectory(_dir.File("model")).FullName;
        Directory.CreateDirectory(_dir.File("elsewhere"));
        Data("elsewhere/w.bin", 8);
        Directory.CreateSymbolicLink(Path.Combine(inner, "sub"), "../elsewhere");
        Refuse(OnnxBytes.Model(OnnxBytes.External("w", [2], "sub/w.bin")), CheckpointErrorKind.UnsafePath, "w", inner);
    }

    [Fact]
    public void Open_ExternalPastEndOfFile_ThrowsOutOfBounds()
    {
        Data("w.bin", 8);
        Refuse(OnnxBytes.Model(OnnxBytes.External("w", [2], "w.bin", offset: 4)), CheckpointErrorKind.OutOfBounds, "w");
    }

    [Fact]
    public void Open_ExternalHugeOffset_ThrowsOutOfBounds()
    {
        Data("w.bin", 8);
        Refuse(OnnxBytes.Model(OnnxBytes.External("w", [2], "w.bin", offset: long.MaxValue)), CheckpointErrorKind.OutOfBounds, "w");
    }

    [Fact]
    public void Open_ExternalLengthNotShapeTimesSize_ThrowsLengthMismatch()
    {
        Data("w.bin", 16);
        Refuse(OnnxBytes.Model(OnnxBytes.External("w", [2], "w.bin", length: 12)), CheckpointErrorKind.LengthMismatch, "w");
    }

    [Fact]
    public void Open_RawDataWrongLength_ThrowsLengthMismatch() =>
        Refuse(OnnxBytes.Model(OnnxBytes.Raw("w", [3], new byte[8])), CheckpointErrorKind.LengthMismatch, "w");

    [Fact]
    public void Open_UnknownDataType_ThrowsUnknownDType() =>
        Refuse(OnnxBytes.Model(OnnxBytes.Raw("s", [1], new byte[8], dataType: 14)), CheckpointErrorKind.UnknownDType, "s");

    [Fact]
    public void Open_NegativeDim_ThrowsInvalidShape() =>
        Refuse(OnnxBytes.Model(OnnxBytes.Raw("w", [-1], [])), CheckpointErrorKind.InvalidShape, "w");

    [Fact]
    public void Open_ShapeOverflow_ThrowsSizeOverflow() =>
        Refuse(OnnxBytes.Model(OnnxBytes.Raw("w", [1L << 40, 1L << 40], [])), CheckpointErrorKind.SizeOverflow, "w");

    [Fact]
    public void Open_DuplicateInitializer_ThrowsDuplicateName() =>
        Refuse(OnnxBytes.Model(OnnxBytes.Raw("w", [1], new byte[4]), OnnxBytes.Raw("w", [1], new byte[4])), CheckpointErrorKind.DuplicateName, "w");

    [Fact]
    public void Open_InitializerWithoutName_ThrowsInvalidHeader() =>
        Refuse(OnnxBytes.Model(OnnxBytes.Message(c => OnnxBytes.Bytes(c, 9, new byte[4]))), CheckpointErrorKind.InvalidHeader);

    [Fact]
    public void Open_NotProtobuf_ThrowsCorrupt() => Refuse([0xFF, 0xFF, 0xFF], CheckpointErrorKind.Corrupt);

    [Fact]
    public void Open_NoGraph_ThrowsCorrupt() => Refuse([0x08, 0x07], CheckpointErrorKind.Corrupt);

    [Fact]
    public void Open_LengthPastEnd_ThrowsOutOfBounds() => Refuse([0x3A, 0x7F, 0x00], CheckpointErrorKind.OutOfBounds);

    [Fact]
    public void Open_TypedFieldCountWrong_ThrowsLengthMismatch() =>
        Refuse(OnnxBytes.Model(OnnxBytes.Tensor("w", 1, [3], c => OnnxBytes.Bytes(c, 4, new byte[8]))), CheckpointErrorKind.LengthMismatch, "w");

    [Fact]
    public void Open_TypedFieldForWrongDType_ThrowsCorrupt() =>
        Refuse(OnnxBytes.Model(OnnxBytes.Tensor("w", 7, [2], c => OnnxBytes.Bytes(c, 4, new byte[8]))), CheckpointErrorKind.Corrupt, "w");

    [Fact]
    public void Open_DataInTwoPlaces_ThrowsCorrupt() =>
        Refuse(OnnxBytes.Model(OnnxBytes.Tensor("w", 1, [2], c => { OnnxBytes.Bytes(c, 9, new byte[8]); OnnxBytes.Bytes(c, 4, new byte[8]); })), CheckpointErrorKind.Corrupt, "w");
}
