using Graft.Checkpoints.PyTorch;
using Graft.Checkpoints.Tests.PyTorch;
using Graft.TestSupport;

namespace Graft.Checkpoints.Tests;

/// <summary><see cref="CheckpointFile.Convert(string, string, string?, long?, IProgress{ConvertProgress}?)"/>: what <c>graft convert</c> runs.</summary>
public sealed class CheckpointFileConvertTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static TensorPayload Payload(string name, DType dtype, params long[] shape)
    {
        var s = new Shape(shape);
        var bytes = new byte[s.ElementCount * dtype.ElementSize()];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (byte)((i * 37) + name.Length);
        }
        return TensorPayload.FromBytes(name, dtype, s, bytes);
    }

    private string Source(params TensorPayload[] tensors)
    {
        var path = _dir.File("in.safetensors");
        CheckpointFile.Write(path, tensors, new Dictionary<string, string> { ["note"] = "kept" });
        return path;
    }

    private static void AssertSameTensors(string a, string b)
    {
        using var x = CheckpointFile.Open(a);
        using var y = CheckpointFile.Open(b);
        Assert.Equal(x.Tensors.Select(t => (t.Name, t.DType, t.Shape)), y.Tensors.Select(t => (t.Name, t.DType, t.Shape)));
        foreach (var t in x.Tensors)
        {
            Assert.True(y.TryGetTensor(t.Name, out var u));
            var bx = new byte[t.ByteLength];
            var by = new byte[u.ByteLength];
            x.ReadBytes(t, bx);
            y.ReadBytes(u, by);
            Assert.Equal(bx, by);
        }
    }

    [Fact]
    public void Convert_SafetensorsToPyTorch_BitExactAndReportsWhatItWrote()
    {
        var src = Source(Payload("conv.weight", DType.F32, 4, 3, 3, 3), Payload("conv.bias", DType.BF16, 4), Payload("steps", DType.I64));
        var outPath = _dir.File("out.pt");
        var seen = new List<ConvertProgress>();
        var result = CheckpointFile.Convert(src, outPath, progress: new Recorder(seen));
        AssertSameTensors(src, outPath);
        Assert.Equal(new ConvertResult(outPath, "pytorch", 3, (4 * 27 * 4) + (4 * 2) + 8, result.Files, src, "safetensors"), result);
        Assert.Equal([outPath], result.Files);
        Assert.Equal([1, 2, 3], seen.Select(p => p.Done));
        Assert.All(seen, p => Assert.Equal(3, p.Total));
        Assert.Equal(["conv.weight", "conv.bias", "steps"], seen.Select(p => p.Current));
    }

    [Fact]
    public void Convert_FormatByName_OverridesTheExtensionAndKeepsMetadata()
    {
        var src = Source(Payload("w", DType.F16, 2, 2));
        var outPath = _dir.File("out.bin");
        var result = CheckpointFile.Convert(src, outPath, format: "safetensors");
        Assert.Equal("safetensors", result.Format);
        using var r = CheckpointFile.Open(outPath);
        Assert.Equal("kept", r.Metadata["note"]);
        AssertSameTensors(src, outPath);
    }

    [Fact]
    public void Convert_ShardedOutput_ListsTheIndexFirstThenEveryShard()
    {
        var src = Source(Payload("a", DType.F32, 256), Payload("b", DType.F32, 256), Payload("c", DType.F32, 256));
        var index = _dir.File("model.safetensors.index.json");
        var result = CheckpointFile.Convert(src, index, maxShardBytes: 1024);
        Assert.Equal("safetensors-sharded", result.Format);
        Assert.Equal(index, result.Files[0]);
        Assert.Equal(3, result.Files.Count - 1);
        Assert.All(result.Files, f => Assert.True(File.Exists(f), f));
        AssertSameTensors(src, index);
    }

    [Fact]
    public void Convert_FromAnOpenReader_TakesTheDictionaryTheCallerChose()
    {
        using var reader = PyTorchReader.Open(Path.Combine(Fixtures.PyTorch, "two_dicts.pt"), "ema");
        var outPath = _dir.File("ema.safetensors");
        var result = CheckpointFile.Convert(reader, outPath);
        Assert.Equal(reader.Tensors.Count, result.Tensors);
        Assert.Equal("pytorch", result.SourceFormat);
        using var written = CheckpointFile.Open(outPath);
        Assert.Equal(reader.Tensors.Select(t => t.Name), written.Tensors.Select(t => t.Name));
    }

    [Theory]
    [InlineData("out.xyz", null, "no format Graft writes uses the extension '.xyz'")]
    [InlineData("out.safetensors", "keras", "Known formats")]
    [InlineData("out.onnx", null, "cannot write the onnx format")]
    [InlineData("out.safetensors", null, "shard size applies to a sharded output")]
    public void Convert_OutputTheUserGotWrong_InvalidInputAndNothingWritten(string output, string? format, string message)
    {
        var src = Source(Payload("w", DType.F32, 2));
        var e = Assert.Throws<InvalidInputException>(() =>
            CheckpointFile.Convert(src, _dir.File(output), format, maxShardBytes: message.Contains("shard", StringComparison.Ordinal) ? 1000 : null));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Equal(["in.safetensors"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Convert_OutputIsTheInputOrAFolder_InvalidInputAndInputUntouched()
    {
        var src = Source(Payload("w", DType.F32, 2));
        var before = File.ReadAllBytes(src);
        Assert.Contains("the output is the input", Assert.Throws<InvalidInputException>(() => CheckpointFile.Convert(src, src)).Message, StringComparison.Ordinal);
        Directory.CreateDirectory(_dir.File("folder.safetensors"));
        Assert.Contains("is a folder", Assert.Throws<InvalidInputException>(() => CheckpointFile.Convert(src, _dir.File("folder.safetensors"))).Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(src));
    }

    [Fact]
    public void Convert_DTypeTheOutputFormatCannotHold_InvalidInputNamingTheDType()
    {
        var src = Source(Payload("u", DType.U16, 2));
        var e = Assert.Throws<InvalidInputException>(() => CheckpointFile.Convert(src, _dir.File("out.pt")));
        Assert.Contains("U16", e.Message, StringComparison.Ordinal);
        Assert.Equal(["in.safetensors"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
    }

    private sealed class Recorder(List<ConvertProgress> seen) : IProgress<ConvertProgress>
    {
        public void Report(ConvertProgress value) => seen.Add(value);
    }
}
