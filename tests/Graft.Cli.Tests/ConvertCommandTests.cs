using System.Buffers.Binary;
using System.Text;
using Graft.Checkpoints;

namespace Graft.Cli.Tests;

public sealed class ConvertCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private static string Fixture(string name) => Path.Combine(CliHarness.RepoRoot(), "tests", "fixtures", "pytorch", name);

    private string Copy(string fixture)
    {
        var path = _h.PathOf(Path.GetFileName(fixture));
        File.Copy(fixture, path);
        return path;
    }

    /// <summary>Every tensor of <paramref name="a"/> equals the one of the same name in <paramref name="b"/>, bit for bit.</summary>
    private static void AssertSameTensors(ICheckpointReader a, ICheckpointReader b)
    {
        Assert.Equal(a.Tensors.Select(t => t.Name), b.Tensors.Select(t => t.Name));
        foreach (var t in a.Tensors)
        {
            Assert.True(b.TryGetTensor(t.Name, out var u), t.Name);
            Assert.Equal(t.DType, u.DType);
            Assert.Equal(t.Shape, u.Shape);
            var x = new byte[t.ByteLength];
            var y = new byte[u.ByteLength];
            a.ReadBytes(t, x);
            b.ReadBytes(u, y);
            Assert.True(x.AsSpan().SequenceEqual(y), $"tensor '{t.Name}' differs");
        }
    }

    [Theory]
    [InlineData("tinycnn.pth")]
    [InlineData("dtypes.pt")]
    [InlineData("shared_views.pt")]
    [InlineData("noncontiguous.pt")]
    [InlineData("legacy.pt")]
    public void Convert_PtToSafetensorsToPt_IsBitExact(string fixture)
    {
        var source = Copy(Fixture(fixture));
        var st = _h.PathOf("mid.safetensors");
        var back = _h.PathOf("back.pt");

        var (code1, out1, err1) = _h.Run("convert", source, st);
        Assert.True(code1 == 0, err1);
        Assert.Contains("(safetensors)", out1);
        var (code2, _, err2) = _h.Run("convert", st, back);
        Assert.True(code2 == 0, err2);

        using var original = CheckpointFile.Open(source);
        using var middle = CheckpointFile.Open(st);
        using var final = CheckpointFile.Open(back);
        Assert.Equal("safetensors", middle.Format);
        Assert.Equal("pytorch", final.Format);
        AssertSameTensors(original, middle);
        AssertSameTensors(original, final);
        Assert.Equal(new[] { "back.pt", "mid.safetensors", fixture }.Order(StringComparer.Ordinal), _h.Files());
    }

    [Fact]
    public void Convert_KeySelectsNestedDictionary_AndMetadataIsCarried()
    {
        var source = Copy(Fixture("two_dicts.pt"));
        var st = _h.PathOf("model.safetensors");
        var (code, _, err) = _h.Run("convert", source, st, "--key", "model");
        Assert.True(code == 0, err);
        using var original = Graft.Checkpoints.PyTorch.PyTorchReader.Open(source, "model");
        using var converted = CheckpointFile.Open(st);
        AssertSameTensors(original, converted);
        Assert.Equal(original.Metadata, converted.Metadata);
    }

    [Fact]
    public void Convert_FormatOptionOverridesExtension()
    {
        var source = Copy(Fixture("tinycnn.pth"));
        var output = _h.PathOf("weights.bin");
        var (code, _, err) = _h.Run("convert", source, output, "--format", "safetensors");
        Assert.True(code == 0, err);
        Assert.Equal("safetensors", CheckpointFile.DetectFormat(output).Name);
        using var a = CheckpointFile.Open(source);
        using var b = CheckpointFile.Open(output, "safetensors");
        AssertSameTensors(a, b);
    }

    [Fact]
    public void Convert_OverExistingOutput_ReplacesIt()
    {
        var source = Copy(Fixture("tinycnn.pth"));
        var output = _h.PathOf("out.safetensors");
        File.WriteAllText(output, "old");
        var (code, _, err) = _h.Run("convert", source, output);
        Assert.True(code == 0, err);
        using var r = CheckpointFile.Open(output);
        Assert.NotEmpty(r.Tensors);
    }

    [Fact]
    public void Convert_OutputIsInput_RefusesWithInvalidArgumentAndLeavesInputAlone()
    {
        var source = Copy(Fixture("tinycnn.pth"));
        var before = CliHarness.Hash(source);
        var (code, _, err) = _h.Run("convert", source, source, "--format", "safetensors");
        Assert.Equal(2, code);
        Assert.Contains("the output is the input", err);
        Assert.Equal(before, CliHarness.Hash(source));
        Assert.Equal(["tinycnn.pth"], _h.Files());
    }

    [Fact]
    public void Convert_ShardSize_SplitsTheOutput_AndBadSizesAreRefused()
    {
        var source = Copy(Fixture("tinycnn.pth"));
        var index = _h.PathOf("model.safetensors.index.json");
        var (code, _, err) = _h.Run("convert", source, index, "--shard-size", "1KiB");
        Assert.True(code == 0, err);
        Assert.True(_h.Files().Count(f => f.StartsWith("model-", StringComparison.Ordinal)) > 1, string.Join(", ", _h.Files()));
        using (var a = CheckpointFile.Open(source))
        using (var b = CheckpointFile.Open(index))
        {
            AssertSameTensors(a, b);
        }
        foreach (var bad in new[] { "0", "-5MB", "12 parsecs", "MB" })
        {
            (code, _, err) = _h.Run("convert", source, _h.PathOf("other.safetensors.index.json"), "--shard-size", bad);
            Assert.Equal(2, code);
            Assert.Contains("--shard-size", err);
        }
        (code, _, err) = _h.Run("convert", source, _h.PathOf("single.safetensors"), "--shard-size", "1MB");
        Assert.Equal(2, code);
        Assert.Contains("applies to a sharded output", err);
        Assert.DoesNotContain("single.safetensors", _h.Files());
    }

    [Fact]
    public void Convert_Json_NamesEveryFileWritten()
    {
        var source = Copy(Fixture("tinycnn.pth"));
        var index = _h.PathOf("model.safetensors.index.json");
        var (code, stdout, err) = _h.Run("convert", source, index, "--shard-size", "2KiB", "--json");
        Assert.True(code == 0, err);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal("safetensors-sharded", root.GetProperty("format").GetString());
        Assert.Equal(index, root.GetProperty("path").GetString());
        Assert.Equal("pytorch", root.GetProperty("sourceFormat").GetString());
        var files = root.GetProperty("files").EnumerateArray().Select(f => Path.GetFileName(f.GetString()!)).ToList();
        Assert.Equal(_h.Files().Where(f => f.StartsWith("model", StringComparison.Ordinal)).Order(StringComparer.Ordinal), files.Order(StringComparer.Ordinal));
        Assert.Equal("model.safetensors.index.json", files[0]);
        using var r = CheckpointFile.Open(index);
        Assert.Equal(r.Tensors.Count, root.GetProperty("tensors").GetInt32());
        Assert.Equal(r.Tensors.Sum(t => t.ByteLength), root.GetProperty("bytes").GetInt64());
    }

    [Fact]
    public void Convert_ShardIntoItsOwnFoldersIndex_RefusedAndEveryFileUnchanged()
    {
        // One shard of a sharded checkpoint converted into that checkpoint's index: the write would replace or clean up
        // the very shard it reads.
        var source = Copy(Fixture("tinycnn.pth"));
        var index = _h.PathOf("model.safetensors.index.json");
        Assert.Equal(0, _h.Run("convert", source, index, "--shard-size", "1KiB").Code);
        var before = _h.Files().ToDictionary(f => f, f => CliHarness.Hash(_h.PathOf(f)));
        var (code, _, err) = _h.Run("convert", _h.PathOf("model-00001-of-" + before.Keys.First(f => f.StartsWith("model-00001-of-", StringComparison.Ordinal))[15..]), index);
        Assert.Equal(2, code);
        Assert.Contains("never modifies its inputs", err);
        Assert.Equal(before, _h.Files().ToDictionary(f => f, f => CliHarness.Hash(_h.PathOf(f))));
    }

    [Fact]
    public void Convert_OutputIsSymlinkToInput_Refuses()
    {
        var source = Copy(Fixture("tinycnn.pth"));
        var link = _h.PathOf("link.pth");
        File.CreateSymbolicLink(link, source);
        var before = CliHarness.Hash(source);
        var (code, _, _) = _h.Run("convert", source, link);
        Assert.Equal(2, code);
        Assert.Equal(before, CliHarness.Hash(source));
    }

    [Fact]
    public void Convert_UnknownOutputExtension_RefusesAndWritesNothing()
    {
        var source = Copy(Fixture("tinycnn.pth"));
        var (code, _, err) = _h.Run("convert", source, _h.PathOf("out.xyz"));
        Assert.Equal(2, code);
        Assert.Contains("--format", err);
        Assert.Equal(["tinycnn.pth"], _h.Files());
    }

    [Fact]
    public void Convert_UnknownFormatName_Refuses()
    {
        var source = Copy(Fixture("tinycnn.pth"));
        var (code, _, err) = _h.Run("convert", source, _h.PathOf("out.safetensors"), "--format", "keras");
        Assert.Equal(2, code);
        Assert.Contains("Known formats", err);
        Assert.Equal(["tinycnn.pth"], _h.Files());
    }

    [Fact]
    public void Convert_MissingInput_ExitsWithFileError()
    {
        var (code, _, _) = _h.Run("convert", _h.PathOf("nope.pt"), _h.PathOf("out.safetensors"));
        Assert.Equal(3, code);
        Assert.Empty(_h.Files());
    }

    [Fact]
    public void Convert_HostileInput_ExitsWithBadCheckpointAndWritesNothing()
    {
        var source = Copy(Path.Combine(CliHarness.RepoRoot(), "tests", "fixtures", "pytorch", "hostile", "os_system.pt"));
        var (code, _, err) = _h.Run("convert", source, _h.PathOf("out.safetensors"));
        Assert.Equal(4, code);
        Assert.Contains("posix.system", err);
        Assert.Equal(["os_system.pt"], _h.Files());
    }

    [Fact]
    public void Convert_KeyOnSafetensorsInput_Refuses()
    {
        var source = Copy(Fixture("tinycnn.pth"));
        var st = _h.PathOf("a.safetensors");
        Assert.Equal(0, _h.Run("convert", source, st).Code);
        var (code, _, err) = _h.Run("convert", st, _h.PathOf("b.pt"), "--key", "state_dict");
        Assert.Equal(2, code);
        Assert.Contains("--key: ", err);
        Assert.Contains("a.safetensors: a key selects one dictionary of a checkpoint holding several; this file is safetensors, which holds one.", err);
        Assert.Equal(["a.safetensors", "tinycnn.pth"], _h.Files());
    }

    [Fact]
    public void Convert_KeyNamingNoDictionary_RefusesAndListsTheOnesFound()
    {
        var source = Copy(Fixture("two_dicts.pt"));
        var (code, _, err) = _h.Run("convert", source, _h.PathOf("out.safetensors"), "--key", "optimizer");
        Assert.Equal(2, code);
        Assert.Contains("'ema'", err);
        Assert.Equal(["two_dicts.pt"], _h.Files());
    }

    [Fact]
    public void Convert_DTypeTheOutputCannotHold_FailsAndLeavesNoTemporaryFile()
    {
        // A U16 tensor: safetensors holds it, PyTorch 1.13 storages do not.
        var json = Encoding.UTF8.GetBytes("{\"u\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]}}");
        var bytes = new byte[8 + json.Length + 4];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        var source = _h.PathOf("u16.safetensors");
        File.WriteAllBytes(source, bytes);
        var (code, _, err) = _h.Run("convert", source, _h.PathOf("out.pt"));
        Assert.Equal(2, code);
        Assert.Contains("U16", err);
        Assert.Equal(["u16.safetensors"], _h.Files());
    }

    [Fact]
    public void Convert_TruncatedSafetensorsInput_ExitsWithBadCheckpointAndWritesNothing()
    {
        var source = Copy(Fixture("tinycnn.pth"));
        var st = _h.PathOf("t.safetensors");
        Assert.Equal(0, _h.Run("convert", source, st).Code);
        var full = File.ReadAllBytes(st);
        File.WriteAllBytes(st, full[..^3]);
        var (code, _, _) = _h.Run("convert", st, _h.PathOf("out.pt"));
        Assert.Equal(4, code);
        Assert.Equal(["t.safetensors", "tinycnn.pth"], _h.Files());
    }
}
