using System.Text.Json;
using Graft.Checkpoints.Safetensors;
using Graft.Checkpoints.Sharded;
using Graft.Checkpoints.Tests.Safetensors;

namespace Graft.Checkpoints.Tests.Sharded;

public sealed class ShardedSafetensorsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static TensorPayload P(string name, int floats, byte seed = 1) =>
        TensorPayload.FromBytes(name, DType.F32, new Shape(floats), Enumerable.Range(0, floats * 4).Select(i => (byte)(i * seed)).ToArray());

    [Fact]
    public void Write_SplitsInOrderWithHuggingFaceNames_AndReadsBack()
    {
        var index = _dir.File("model.safetensors.index.json");
        var payloads = new[] { P("a", 10), P("b", 10), P("c", 30), P("d", 1) };
        var shards = ShardedSafetensorsWriter.Write(index, payloads, new Dictionary<string, string> { ["note"] = "x" }, maxShardBytes: 80);
        Assert.Equal(["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"],
            shards.Select(Path.GetFileName));
        using (var s = SafetensorsReader.Open(shards[0]))
        {
            Assert.Equal(["a", "b"], s.Tensors.Select(t => t.Name));
            Assert.Equal("pt", s.Metadata["format"]);
        }

        using var r = ShardedSafetensorsReader.Open(index);
        Assert.Equal("safetensors-sharded", r.Format);
        Assert.Equal(["a", "b", "c", "d"], r.Tensors.Select(t => t.Name));
        Assert.Equal("x", r.Metadata["note"]);
        Assert.Equal("204", r.Metadata["total_size"]);
        foreach (var p in payloads)
        {
            Assert.True(r.TryGetTensor(p.Name, out var info));
            var expected = new MemoryStream();
            p.WriteTo(expected);
            var actual = new byte[info.ByteLength];
            r.ReadBytes(info, actual);
            Assert.Equal(expected.ToArray(), actual);
        }
    }

    [Fact]
    public void Write_IsDeterministic()
    {
        var payloads = new[] { P("x", 4), P("y", 4) };
        var a = Directory.CreateDirectory(_dir.File("a")).FullName;
        var b = Directory.CreateDirectory(_dir.File("b")).FullName;
        ShardedSafetensorsWriter.Write(Path.Combine(a, "m.safetensors.index.json"), payloads, null, 16);
        ShardedSafetensorsWriter.Write(Path.Combine(b, "m.safetensors.index.json"), payloads, null, 16);
        foreach (var f in Directory.GetFiles(a))
        {
            Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(b, Path.GetFileName(f))));
        }
        Assert.Equal(3, Directory.GetFiles(a).Length);
    }

    [Fact]
    public void Write_BadIndexName_ThrowsArgument() =>
        Assert.Throws<ArgumentException>(() => ShardedSafetensorsWriter.Write(_dir.File("model.json"), [P("a", 1)], null, 100));

    [Fact]
    public void CheckpointFile_IndexExtension_UsesDefaultShardSize()
    {
        var index = _dir.File("model.safetensors.index.json");
        Assert.Equal("safetensors-sharded", CheckpointFile.FormatFromExtension(index)!.Name);
        CheckpointFile.Write(index, [P("a", 4), P("b", 4)]);
        Assert.True(File.Exists(_dir.File("model-00001-of-00001.safetensors")));
        using var r = CheckpointFile.Open(index);
        Assert.Equal("safetensors-sharded", r.Format);
        Assert.Equal(2, r.Tensors.Count);
    }

    [Fact]
    public void DefaultMaxShardBytes_NotPositive_Throws() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => ShardedSafetensorsFormat.DefaultMaxShardBytes = 0);
}

/// <summary>One named negative test per rule the sharded reader enforces.</summary>
public sealed class ShardedSafetensorsValidationTests : IDisposable
{
    private readonly TempDir _dir = new();

    public ShardedSafetensorsValidationTests()
    {
        SafetensorsWriter.Write(_dir.File("s1.safetensors"), [Payload("a"), Payload("b")]);
        SafetensorsWriter.Write(_dir.File("s2.safetensors"), [Payload("c")]);
    }

    public void Dispose() => _dir.Dispose();

    private static TensorPayload Payload(string name) => TensorPayload.FromBytes(name, DType.U8, new Shape(2), new byte[] { 1, 2 });

    private static string Index(params (string Tensor, string Shard)[] map) =>
        JsonSerializer.Serialize(new { metadata = new { total_size = 6 }, weight_map = map.ToDictionary(m => m.Tensor, m => m.Shard) });

    private CheckpointFormatException Refuse(string indexJson, CheckpointErrorKind kind, string? tensor = null, string? folder = null)
    {
        var path = Path.Combine(folder ?? _dir.Path, "model.safetensors.index.json");
        File.WriteAllText(path, indexJson);
        var ex = Assert.Throws<CheckpointFormatException>(() => ShardedSafetensorsReader.Open(path));
        Assert.Equal(kind, ex.Kind);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        if (tensor is not null)
        {
            Assert.Equal(tensor, ex.TensorName);
            Assert.Contains($"'{tensor}'", ex.Message, StringComparison.Ordinal);
        }
        return ex;
    }

    [Fact]
    public void Open_ValidHandWrittenIndex_Opens()
    {
        File.WriteAllText(_dir.File("model.safetensors.index.json"), Index(("a", "s1.safetensors"), ("b", "s1.safetensors"), ("c", "s2.safetensors")));
        using var r = ShardedSafetensorsReader.Open(_dir.File("model.safetensors.index.json"));
        Assert.Equal(["a", "b", "c"], r.Tensors.Select(t => t.Name));
        Assert.Equal("6", r.Metadata["total_size"]);
    }

    [Theory]
    [InlineData("/etc/passwd")]
    [InlineData("/tmp/s1.safetensors")]
    [InlineData("C:\\Windows\\x.safetensors")]
    public void Open_AbsoluteShardName_ThrowsUnsafePath(string shard) =>
        Refuse(Index(("a", shard)), CheckpointErrorKind.UnsafePath, "a");

    [Theory]
    [InlineData("..")]
    [InlineData("../s1.safetensors")]
    [InlineData("..\\s1.safetensors")]
    public void Open_DotDotShardName_ThrowsUnsafePath(string shard) =>
        Refuse(Index(("a", shard)), CheckpointErrorKind.UnsafePath, "a");

    [Theory]
    [InlineData("sub/s1.safetensors")]
    [InlineData("./s1.safetensors")]
    public void Open_ShardNameWithSeparator_ThrowsUnsafePath(string shard) =>
        Refuse(Index(("a", shard)), CheckpointErrorKind.UnsafePath, "a");

    [Fact]
    public void Open_ShardSymlinkLeavingFolder_ThrowsUnsafePath()
    {
        var inner = Directory.CreateDirectory(_dir.File("inner")).FullName;
        File.CreateSymbolicLink(Path.Combine(inner, "s1.safetensors"), _dir.File("s1.safetensors"));
        Refuse(Index(("a", "s1.safetensors"), ("b", "s1.safetensors")), CheckpointErrorKind.UnsafePath, "a", inner);
    }

    [Fact]
    public void Open_ShardSymlinkInsideFolder_IsAccepted()
    {
        File.CreateSymbolicLink(_dir.File("link.safetensors"), "s2.safetensors");
        File.WriteAllText(_dir.File("model.safetensors.index.json"), Index(("c", "link.safetensors")));
        using var r = ShardedSafetensorsReader.Open(_dir.File("model.safetensors.index.json"));
        Assert.Single(r.Tensors);
    }

    [Fact]
    public void Open_IndexNamesTensorShardLacks_ThrowsInconsistent() =>
        Refuse(Index(("a", "s1.safetensors"), ("b", "s1.safetensors"), ("c", "s2.safetensors"), ("z", "s2.safetensors")), CheckpointErrorKind.Inconsistent, "z");

    [Fact]
    public void Open_ShardHoldsUnlistedTensor_ThrowsInconsistent() =>
        Refuse(Index(("a", "s1.safetensors")), CheckpointErrorKind.Inconsistent, "b");

    [Fact]
    public void Open_TensorInTwoShards_ThrowsInconsistent()
    {
        SafetensorsWriter.Write(_dir.File("s3.safetensors"), [Payload("c")]);
        Refuse(Index(("a", "s1.safetensors"), ("b", "s1.safetensors"), ("c", "s2.safetensors"), ("d", "s3.safetensors")), CheckpointErrorKind.Inconsistent, "c");
    }

    [Fact]
    public void Open_MissingShard_ThrowsFileNotFound()
    {
        File.WriteAllText(_dir.File("model.safetensors.index.json"), Index(("a", "nope.safetensors")));
        Assert.Throws<FileNotFoundException>(() => ShardedSafetensorsReader.Open(_dir.File("model.safetensors.index.json")));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{\"weight_map\":{\"a\":\"s1.safetensors\"}")]
    [InlineData("{\"weight_map\":{},}")]
    public void Open_IndexNotJson_ThrowsHeaderNotJson(string json) => Refuse(json, CheckpointErrorKind.HeaderNotJson);

    [Theory]
    [InlineData("[]")]
    [InlineData("{\"metadata\":{}}")]
    [InlineData("{\"weight_map\":[\"s1.safetensors\"]}")]
    [InlineData("{\"weight_map\":{},\"weight_map\":{}}")]
    public void Open_IndexWrongStructure_ThrowsInvalidHeader(string json) => Refuse(json, CheckpointErrorKind.InvalidHeader);

    [Fact]
    public void Open_ShardNameNotString_ThrowsInvalidHeader() =>
        Refuse("{\"weight_map\":{\"a\":1}}", CheckpointErrorKind.InvalidHeader, "a");

    [Fact]
    public void Open_MetadataNested_ThrowsInvalidMetadata() =>
        Refuse("{\"metadata\":{\"k\":{}},\"weight_map\":{}}", CheckpointErrorKind.InvalidMetadata);

    [Fact]
    public void Open_TensorTwiceInWeightMap_ThrowsDuplicateName() =>
        Refuse("{\"weight_map\":{\"a\":\"s1.safetensors\",\"a\":\"s2.safetensors\"}}", CheckpointErrorKind.DuplicateName, "a");

    [Fact]
    public void Open_IndexNotUtf8_ThrowsHeaderNotUtf8()
    {
        var path = _dir.File("model.safetensors.index.json");
        File.WriteAllBytes(path, [(byte)'{', 0xFF, (byte)'}']);
        Assert.Equal(CheckpointErrorKind.HeaderNotUtf8, Assert.Throws<CheckpointFormatException>(() => ShardedSafetensorsReader.Open(path)).Kind);
    }
}
