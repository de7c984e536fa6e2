using Graft.Checkpoints;

namespace Graft.Cli.Tests;

/// <summary>
/// Issue 21: an output larger than its file system's free space is refused before anything is written (exit 3, the
/// sizes in the message), with the report that would have gone with it, and an existing output is left as it was. The
/// disk is played small on each test's own flow (<see cref="OutputSpace.Pretend"/>; the CLI runs in-process).
/// </summary>
public sealed class OutputSpaceCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public OutputSpaceCommandTests() => OutputSpace.Pretend.Value = _ => 1000;

    public void Dispose()
    {
        OutputSpace.Pretend.Value = null;
        _h.Dispose();
    }

    private string Checkpoint(string name, long inputs)
    {
        var path = _h.PathOf(name);
        var s = new Shape(8, inputs, 3, 3);
        CheckpointFile.Write(path, [TensorPayload.FromBytes("c1.weight", DType.F32, s, new byte[s.ElementCount * 4]), TensorPayload.FromBytes("c1.bias", DType.F32, new Shape(8), new byte[32])]);
        return path;
    }

    [Fact]
    public void Transfer_OutputLargerThanTheFreeSpace_Exit3_NothingWritten()
    {
        var source = Checkpoint("src.safetensors", 3);
        var template = Checkpoint("tpl.safetensors", 16);
        var output = _h.PathOf("out.safetensors");
        File.WriteAllText(output, "previous");
        var (code, _, err) = _h.Run("transfer", source, "--into", template, "--out", output, "--report", _h.PathOf("r.json"));
        Assert.Equal(3, code);
        // 8·16·3·3 + 8 float32 values = 4,640 bytes on a disk with 1,000 free.
        Assert.Contains("out.safetensors: the output needs 4.5 KiB, but its file system has only 1000 B of free space; nothing was written.", err, StringComparison.Ordinal);
        Assert.Equal("previous", File.ReadAllText(output));
        Assert.False(File.Exists(_h.PathOf("r.json")));
        Assert.Equal(["out.safetensors", "src.safetensors", "tpl.safetensors"], Directory.GetFiles(_h.Dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Convert_OutputLargerThanTheFreeSpace_Exit3_NothingWritten()
    {
        var source = Checkpoint("src.safetensors", 16);
        var (code, _, err) = _h.Run("convert", source, _h.PathOf("out.pt"));
        Assert.Equal(3, code);
        Assert.Contains("out.pt: the output needs 4.5 KiB, but its file system has only 1000 B of free space", err, StringComparison.Ordinal);
        Assert.Equal(["src.safetensors"], Directory.GetFiles(_h.Dir).Select(Path.GetFileName));
    }

    [Fact]
    public void Convert_OutputThatFits_IsWritten()
    {
        OutputSpace.Pretend.Value = _ => 896;
        var (code, _, err) = _h.Run("convert", Checkpoint("src.safetensors", 3), _h.PathOf("out.safetensors"));
        Assert.True(code == 0, err);
        Assert.True(File.Exists(_h.PathOf("out.safetensors")));
    }
}
