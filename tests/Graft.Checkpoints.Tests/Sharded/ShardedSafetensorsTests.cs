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

    private string[] Files() => Directory.GetFiles(_dir.Path).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToArray();

    private static float FirstFloat(string index, string tensor)
    {
        using var r = ShardedSafetensorsReader.Open(index);
        Assert.True(r.TryGetTensor(tensor, out var info));
        var bytes = new byte[info.ByteLength];
        r.ReadBytes(info, bytes);
        return BitConverter.ToSingle(bytes, 4);
    }

    [Fact]
    public void Write_OverAnIndexWithTheSameShardNames_AlternatesNamesAndRemovesTheOldGeneration()
    {
        // Rewriting in place must never rename a new shard over one the live index names: a crash between two shard
        // renames would otherwise leave the old index over a mix of old and new shards.
        var index = _dir.File("model.safetensors.index.json");
        ShardedSafetensorsWriter.Write(index, [P("a", 10, 1), P("b", 10, 1)], null, maxShardBytes: 40);
        Assert.Equal(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"], Files());

        var second = ShardedSafetensorsWriter.Write(index, [P("a", 10, 2), P("b", 10, 2)], null, maxShardBytes: 40);
        Assert.Equal(["model-00001-of-00002-b.safetensors", "model-00002-of-00002-b.safetensors"], second.Select(Path.GetFileName));
        Assert.Equal(["model-00001-of-00002-b.safetensors", "model-00002-of-00002-b.safetensors", "model.safetensors.index.json"], Files());
        Assert.Equal(BitConverter.ToSingle([8, 10, 12, 14]), FirstFloat(index, "b")); // element 1 is bytes 4..7, each i * seed
        ShardedSafetensorsWriter.Write(index, [P("a", 10, 3), P("b", 10, 3)], null, maxShardBytes: 40);
        Assert.Equal(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"], Files());
        Assert.Equal(BitConverter.ToSingle([12, 15, 18, 21]), FirstFloat(index, "b"));
    }

    [Fact]
    public void Write_WithAnotherShardCount_DeletesTheShardsTheOldIndexNamed()
    {
        var index = _dir.File("model.safetensors.index.json");
        ShardedSafetensorsWriter.Write(index, [P("a", 10), P("b", 10), P("c", 10)], null, maxShardBytes: 40);
        Assert.Equal(4, Files().Length);
        ShardedSafetensorsWriter.Write(index, [P("a", 10), P("b", 10), P("c", 10)], null, maxShardBytes: 80);
        Assert.Equal(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"], Files());
        using var r = ShardedSafetensorsReader.Open(index);
        Assert.Equal(["a", "b", "c"], r.Tensors.Select(t => t.Name));
    }

    [Fact]
    public void Write_FilesNoIndexNames_AreNeverDeletedOrReplaced_EvenWithShardNames()
    {
        var index = _dir.File("model.safetensors.index.json");
        // Files that merely look like this index's shards (a user's, a copy's) and files of other names: none is ours.
        string[] lookalikes = ["model-00001-of-00007.safetensors", "model-00003-of-00004-b.safetensors", "model-00001-of-00001.safetensors"];
        string[] others = ["other-00001-of-00002.safetensors", "model-final.safetensors", "model-00001-of-00002.safetensors.bak", "notes.txt"];
        foreach (var f in lookalikes.Concat(others))
        {
            File.WriteAllBytes(_dir.File(f), [1, 2, 3]);
        }
        var written = ShardedSafetensorsWriter.Write(index, [P("a", 10)], null, maxShardBytes: 100);
        // The plain name is taken by a file no index names: the new shard takes the next generation's name instead.
        Assert.Equal(["model-00001-of-00001-b.safetensors"], written.Select(Path.GetFileName));
        Assert.Equal(lookalikes.Concat(others).Append("model-00001-of-00001-b.safetensors").Append("model.safetensors.index.json").Order(StringComparer.Ordinal), Files());
        foreach (var f in lookalikes.Concat(others))
        {
            Assert.Equal([1, 2, 3], File.ReadAllBytes(_dir.File(f)));
        }
    }

    [Fact]
    public void Write_ShardsAnotherIndexNames_AreNeitherReplacedNorDeleted()
    {
        // d/other.safetensors.index.json names model-0000N-of-00003.safetensors: a checkpoint beside ours with our names.
        var other = _dir.File("other.safetensors.index.json");
        var index = _dir.File("model.safetensors.index.json");
        ShardedSafetensorsWriter.Write(index, [P("a", 10, 5), P("b", 10, 5), P("c", 10, 5)], null, maxShardBytes: 40);
        File.Move(index, other);
        var before = Directory.GetFiles(_dir.Path).ToDictionary(f => f, File.ReadAllBytes);
        for (var round = 0; round < 3; round++)
        {
            ShardedSafetensorsWriter.Write(index, [P("a", 10, 1), P("b", 10, 1), P("c", 10, 1)], null, maxShardBytes: 40);
            ShardedSafetensorsWriter.Write(index, [P("a", 10, 2)], null, maxShardBytes: 100);
        }
        foreach (var (f, bytes) in before)
        {
            Assert.Equal(bytes, File.ReadAllBytes(f));
        }
        using (var r = ShardedSafetensorsReader.Open(other))
        {
            Assert.Equal(3, r.ShardPaths.Count);
        }
        using (var r = ShardedSafetensorsReader.Open(index))
        {
            Assert.Equal(["a"], r.Tensors.Select(t => t.Name));
        }
        // Only the other checkpoint, ours, and nothing of our earlier generations.
        Assert.Equal(before.Count + 2, Files().Length);
        Assert.DoesNotContain(_dir.File("model-00001-of-00003.safetensors"), ShardedSafetensorsWriter.FilesReplacedBy(index));
    }

    [Fact]
    public void Write_TwoConcurrentWritersOfOneIndex_TenRounds_IndexAlwaysNamesCompleteShards()
    {
        var index = _dir.File("model.safetensors.index.json");
        int losses = 0;
        for (var round = 0; round < 10; round++)
        {
            var errors = new System.Collections.Concurrent.ConcurrentBag<Exception>();
            var threads = Enumerable.Range(0, 2).Select(w => new Thread(() =>
            {
                try
                {
                    ShardedSafetensorsWriter.Write(index, Enumerable.Range(0, 6).Select(i => P($"t{i}", 4096, (byte)(w + 1))), null, maxShardBytes: 20_000 + 4096 * w);
                }
                catch (IOException ex)
                {
                    errors.Add(ex);
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            foreach (var e in errors)
            {
                // The loser fails cleanly, saying why; it wrote nothing.
                Assert.Contains("another graft process is writing it", e.Message, StringComparison.Ordinal);
                losses++;
            }
            Assert.True(errors.Count < 2, $"round {round}: both writers failed");
            using var r = ShardedSafetensorsReader.Open(index);
            Assert.Equal(6, r.Tensors.Count);
            foreach (var t in r.Tensors)
            {
                var b = new byte[t.ByteLength];
                r.ReadBytes(t, b);
            }
            // Every shard file in the folder is one the index names: no generation left behind, none missing.
            Assert.Equal(r.ShardPaths.Select(Path.GetFileName).Append("model.safetensors.index.json").Order(StringComparer.Ordinal), Files());
        }
        Assert.True(losses <= 10);
    }

    [Fact]
    public void FilesReplacedBy_NamesTheIndexAndTheShardsItsPreviousGenerationOwns()
    {
        var index = _dir.File("m.safetensors.index.json");
        ShardedSafetensorsWriter.Write(index, [P("a", 10), P("b", 10)], null, maxShardBytes: 40);
        File.WriteAllBytes(_dir.File("m-00009-of-00009.safetensors"), [0]);
        File.WriteAllBytes(_dir.File("n-00001-of-00001.safetensors"), [0]);
        Assert.Equal(["m-00001-of-00002.safetensors", "m-00002-of-00002.safetensors", "m.safetensors.index.json"],
            ShardedSafetensorsWriter.FilesReplacedBy(index).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void EnsureOutputSparesInputs_RefusesAShardedOutputThatWouldReplaceAnInputShard()
    {
        var index = _dir.File("model.safetensors.index.json");
        ShardedSafetensorsWriter.Write(index, [P("a", 10), P("b", 10)], null, maxShardBytes: 40);
        using var shard = CheckpointFile.Open(_dir.File("model-00001-of-00002.safetensors"));
        var format = CheckpointFile.GetFormat("safetensors-sharded");
        var ex = Assert.Throws<InvalidInputException>(() => CheckpointFile.EnsureOutputSparesInputs(index, format, (shard, "input")));
        Assert.Contains("model-00001-of-00002.safetensors", ex.Message);
        Assert.Contains("never modifies its inputs", ex.Message);
        // The whole sharded checkpoint as input, written to another index in the same folder: nothing shared, accepted.
        using var whole = CheckpointFile.Open(index);
        CheckpointFile.EnsureOutputSparesInputs(_dir.File("copy.safetensors.index.json"), format, (whole, "input"));
        Assert.Throws<InvalidInputException>(() => CheckpointFile.EnsureOutputSparesInputs(index, format, (whole, "input")));
    }

    private sealed class Failing(string name) : TensorPayload(name, DType.U8, new Shape(8))
    {
        public override void WriteTo(Stream destination) => throw new IOException("disk on fire");
    }

    [Fact]
    public void Write_PayloadFailsInALaterShard_OriginalErrorAndNoNewShardLeft_PreviousCheckpointIntact()
    {
        var index = _dir.File("model.safetensors.index.json");
        ShardedSafetensorsWriter.Write(index, [P("a", 10, 1), P("b", 10, 1), P("c", 10, 1)], null, maxShardBytes: 40);
        var before = Files().ToDictionary(f => f, f => File.ReadAllBytes(_dir.File(f)));
        var ex = Assert.Throws<IOException>(() => ShardedSafetensorsWriter.Write(index, [P("a", 10, 2), P("b", 10, 2), new Failing("c")], null, maxShardBytes: 40));
        Assert.Equal("disk on fire", ex.Message);
        Assert.Equal(before.Keys, Files());
        Assert.All(before, kv => Assert.Equal(kv.Value, File.ReadAllBytes(_dir.File(kv.Key))));
    }

    [Fact]
    public void Write_ManyShards_EveryTensorInItsShardBitExact()
    {
        var index = _dir.File("model.safetensors.index.json");
        var payloads = Enumerable.Range(0, 9).Select(i => P($"t{i}", 10 + i, (byte)(i + 1))).ToArray();
        var shards = ShardedSafetensorsWriter.Write(index, payloads, null, maxShardBytes: 50);
        Assert.Equal(9, shards.Count);
        using var r = ShardedSafetensorsReader.Open(index);
        Assert.Equal(payloads.Select(p => p.Name), r.Tensors.Select(t => t.Name));
        foreach (var p in payloads)
        {
            var expected = new MemoryStream();
            p.WriteTo(expected);
            Assert.True(r.TryGetTensor(p.Name, out var info));
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
        Assert.Throws<InvalidInputException>(() => ShardedSafetensorsWriter.Write(_dir.File("model.json"), [P("a", 1)], null, 100));

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
