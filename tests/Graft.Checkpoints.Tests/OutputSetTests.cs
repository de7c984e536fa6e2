using Graft.Checkpoints.Onnx;
using Graft.Checkpoints.Sharded;
using Graft.Checkpoints.Tests.PyTorch;

namespace Graft.Checkpoints.Tests;

/// <summary>
/// One output set per command: every file it writes or deletes is checked against every file its inputs read (by
/// identity, through links) and against each other before anything is written, and committed together or not at all.
/// </summary>
public sealed class OutputSetTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static TensorPayload P(string name, byte seed = 1) =>
        TensorPayload.FromBytes(name, DType.F32, new Shape(4), Enumerable.Range(0, 16).Select(i => (byte)(i * seed)).ToArray());

    private string[] AllFiles() => Directory.GetFiles(_dir.Path, "*", SearchOption.AllDirectories)
        .Select(f => Path.GetRelativePath(_dir.Path, f)).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void Commit_SecondWriteFails_NoOutputChangedAndNoTemporaryLeft()
    {
        var first = _dir.Write("out.safetensors", [9, 9]);
        using (var set = new OutputSet())
        {
            CheckpointFile.Write(first, [P("a")]);
            Assert.Throws<IOException>(() => AtomicFile.Write(_dir.File("report.json"), _ => throw new IOException("disk full")));
        }
        Assert.Equal([9, 9], File.ReadAllBytes(first));
        Assert.Equal(["out.safetensors"], AllFiles());
    }

    [Fact]
    public void Commit_RenamesEveryStagedFile_AndNothingBefore()
    {
        var a = _dir.File("a.safetensors");
        var b = _dir.File("b.json");
        using (var set = new OutputSet())
        {
            CheckpointFile.Write(a, [P("a")]);
            AtomicFile.Write(b, s => s.Write("{}"u8));
            Assert.False(File.Exists(a));
            Assert.False(File.Exists(b));
            Assert.Equal([a, b], set.Commit());
        }
        Assert.Equal(["a.safetensors", "b.json"], AllFiles());
    }

    [Fact]
    public void AddOutput_FolderMissing_ThrowsBeforeAnyWrite()
    {
        using var set = new OutputSet();
        Assert.Throws<DirectoryNotFoundException>(() => set.AddOutput(_dir.File("nodir/r.json"), "report"));
        Assert.Throws<InvalidInputException>(() => set.AddOutput(_dir.Path, "report"));
    }

    [Fact]
    public void AddOutput_SameFileAsAnotherOutput_Refused_EvenThroughALinkedFolder()
    {
        var real = Directory.CreateDirectory(_dir.File("t")).FullName;
        Directory.CreateSymbolicLink(_dir.File("o"), real);
        using var set = new OutputSet();
        set.AddOutput(Path.Combine(real, "out.safetensors"), "output");
        var ex = Assert.Throws<InvalidInputException>(() => set.AddOutput(_dir.File("o/out.safetensors"), "report"));
        Assert.Contains("same file as the output", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddInput_AfterAnOutputThatIsOneOfItsShards_Refused()
    {
        var index = _dir.File("s/model.safetensors.index.json");
        Directory.CreateDirectory(_dir.File("s"));
        ShardedSafetensorsWriter.Write(index, [P("a"), P("b")], null, maxShardBytes: 16);
        var shard = _dir.File("s/model-00001-of-00002.safetensors");
        var before = File.ReadAllBytes(shard);
        using (var set = new OutputSet())
        {
            set.AddOutput(shard, "report");
            using var reader = CheckpointFile.Open(index);
            Assert.Throws<InvalidInputException>(() => set.AddInput(reader, "source"));
        }
        Assert.Equal(before, File.ReadAllBytes(shard));
    }

    [Fact]
    public void Lock_HeldByAnotherSet_FailsCleanly_AndIsReleasedAndRemovedAfterCommit()
    {
        var target = _dir.File("m.safetensors.index.json");
        using (var first = new OutputSet())
        {
            first.Lock(target);
            var t = new Thread(() =>
            {
                using var second = new OutputSet();
                var ex = Assert.Throws<IOException>(() => second.Lock(target));
                Assert.Contains("another graft process is writing it", ex.Message, StringComparison.Ordinal);
            });
            t.Start();
            t.Join();
            first.Commit();
        }
        Assert.Empty(AllFiles());
        using var third = new OutputSet();
        third.Lock(target);
    }

    [Fact]
    public void StaleTemporaries_OfAGoneProcess_AreRemovedAndReported_OthersKept()
    {
        // A pid above Linux's pid_max (2^22) belongs to no process.
        var stale = _dir.Write(".out.safetensors.graft99999999.0123abcd.tmp", [1]);
        var fresh = _dir.Write(".x.safetensors.graft99999998.0123abcd.tmp", [1]);
        var mine = _dir.Write($".y.safetensors.graft{Environment.ProcessId}.0123abcd.tmp", [1]);
        var foreign = _dir.Write(".notes.99999999.tmp", [1]);
        File.SetLastWriteTimeUtc(stale, DateTime.UtcNow.AddHours(-1));
        File.SetLastWriteTimeUtc(mine, DateTime.UtcNow.AddHours(-1));
        File.SetLastWriteTimeUtc(foreign, DateTime.UtcNow.AddHours(-1));
        var removed = new List<string>();
        void Seen(string p) => removed.Add(p);
        OutputSet.StaleTemporaryRemoved += Seen;
        try
        {
            CheckpointFile.Write(_dir.File("out.safetensors"), [P("a")]);
        }
        finally
        {
            OutputSet.StaleTemporaryRemoved -= Seen;
        }
        Assert.False(File.Exists(stale));
        Assert.Contains(stale, removed);
        Assert.True(File.Exists(fresh)); // modified within the last minute: perhaps another pid namespace's live write
        Assert.True(File.Exists(mine));
        Assert.True(File.Exists(foreign));
    }

    [Fact]
    public void TemporaryName_CarriesThisProcessId()
    {
        Assert.Matches($@"^\.m\.safetensors\.graft{Environment.ProcessId}\.[0-9a-f]{{8}}\.tmp$", AtomicFile.TemporaryName("m.safetensors"));
    }

    private string CopyOnnx(string folder)
    {
        Directory.CreateDirectory(_dir.File(folder));
        foreach (var f in Directory.GetFiles(Path.Combine(Fixtures.Root, "onnx")))
        {
            File.Copy(f, Path.Combine(_dir.File(folder), Path.GetFileName(f)), overwrite: true);
        }
        return Path.Combine(_dir.File(folder), "external.onnx");
    }

    private static List<TensorPayload> Replaced(string model, byte seed)
    {
        using var r = OnnxReader.Open(model);
        return r.Tensors.Select(t => TensorPayload.FromBytes(t.Name, t.DType, t.Shape, Enumerable.Range(0, (int)t.ByteLength).Select(i => (byte)(i + seed)).ToArray())).ToList();
    }

    [Fact]
    public void Onnx_RewriteAlternatesDataNames_AndDeletesOnlyThePreviousModelsData()
    {
        var template = CopyOnnx("t");
        var output = _dir.File("t/out.onnx");
        OnnxWriter.ReplaceInitializers(template, output, Replaced(template, 1));
        Assert.True(File.Exists(_dir.File("t/out.onnx.data")));
        OnnxWriter.ReplaceInitializers(template, output, Replaced(template, 2));
        Assert.False(File.Exists(_dir.File("t/out.onnx.data")));
        Assert.True(File.Exists(_dir.File("t/out.onnx.b.data")));
        OnnxWriter.ReplaceInitializers(template, output, Replaced(template, 3));
        Assert.True(File.Exists(_dir.File("t/out.onnx.data")));
        Assert.False(File.Exists(_dir.File("t/out.onnx.b.data")));
        using var r = OnnxReader.Open(output);
        var t = r.Tensors.First(r.IsExternal);
        var b = new byte[t.ByteLength];
        r.ReadBytes(t, b);
        Assert.Equal(Enumerable.Range(0, b.Length).Select(i => (byte)(i + 3)), b);
    }

    private sealed class Failing(TensorPayload inner) : TensorPayload(inner.Name, inner.DType, inner.Shape)
    {
        public override void WriteTo(Stream destination) => throw new IOException("disk full");
    }

    [Fact]
    public void Onnx_WriteFailsHalfway_PreviousModelAndDataByteIdentical()
    {
        var template = CopyOnnx("t");
        var output = _dir.File("t/out.onnx");
        OnnxWriter.ReplaceInitializers(template, output, Replaced(template, 1));
        var before = Directory.GetFiles(_dir.File("t")).ToDictionary(f => f, File.ReadAllBytes);
        var payloads = Replaced(template, 2);
        // The model's raw initializers are written after the data file: fail on the last one.
        payloads[^1] = new Failing(payloads[^1]);
        Assert.Throws<IOException>(() => OnnxWriter.ReplaceInitializers(template, output, payloads));
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), Directory.GetFiles(_dir.File("t")).Order(StringComparer.Ordinal));
        foreach (var (f, bytes) in before)
        {
            Assert.Equal(bytes, File.ReadAllBytes(f));
        }
    }

    [Fact]
    public void Onnx_OutputDataIsTheTemplatesData_ThroughALinkedFolder_Refused()
    {
        // The template's data file is t/external.onnx.data; the output o/external.onnx (o → t) would write exactly that name.
        var template = CopyOnnx("t");
        Directory.CreateSymbolicLink(_dir.File("o"), _dir.File("t"));
        var before = File.ReadAllBytes(_dir.File("t/external.onnx.data"));
        var other = _dir.File("t/copy.onnx");
        File.Copy(template, other);
        Assert.Throws<InvalidInputException>(() => OnnxWriter.ReplaceInitializers(other, _dir.File("o/external.onnx"), Replaced(template, 4)));
        Assert.Equal(before, File.ReadAllBytes(_dir.File("t/external.onnx.data")));
    }

    [Fact]
    public void Convert_InputIsTheOutputsDataFile_Refused()
    {
        // graft convert out.onnx.data … --out out.onnx would replace the source with the new data file.
        var source = _dir.File("out.onnx.data");
        CheckpointFile.Write(source, [P("a")], format: "safetensors");
        var before = File.ReadAllBytes(source);
        using var reader = CheckpointFile.Open(source);
        Assert.Throws<InvalidInputException>(() => CheckpointFile.EnsureOutputSparesInputs(_dir.File("out.onnx"), OnnxFormat.Instance, (reader, "source")));
        Assert.Equal(before, File.ReadAllBytes(source));
    }
}
