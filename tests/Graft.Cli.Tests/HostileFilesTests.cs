using Graft.Checkpoints;
using Graft.TestSupport;

namespace Graft.Cli.Tests;

/// <summary>
/// The command line against hostile and careless file layouts: an output reaching an input through a linked folder or a
/// hard link (exit 2, input intact), FIFOs as inputs (exit 4, never a hang), device nodes and links into /dev as outputs
/// (exit 2, never renamed over), and output names up to the file system's limit.
/// </summary>
public sealed class HostileFilesTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private static TensorPayload F32(string name, params long[] shape)
    {
        var s = new Shape(shape);
        return TensorPayload.FromBytes(name, DType.F32, s, new byte[s.ElementCount * 4]);
    }

    private string Checkpoint(string path)
    {
        CheckpointFile.Write(path, [F32("conv.weight", 4, 3, 3, 3), F32("conv.bias", 4)]);
        return path;
    }

    /// <summary>A folder S with in.safetensors, and W/sdir, a link to S.</summary>
    private (string Input, string ThroughLink) LinkedFolder()
    {
        var s = Directory.CreateDirectory(_h.PathOf("S")).FullName;
        var w = Directory.CreateDirectory(_h.PathOf("W")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(w, "sdir"), s);
        return (Checkpoint(Path.Combine(s, "in.safetensors")), Path.Combine(w, "sdir", "in.safetensors"));
    }

    [UnixOnlyFact]
    public void Convert_OutputThroughSymlinkedFolder_Exit2AndInputIntact()
    {
        var (input, through) = LinkedFolder();
        var hash = CliHarness.Hash(input);
        var (code, _, stderr) = _h.Run("convert", input, through, "--format", "pytorch");
        Assert.Equal(2, code);
        Assert.Contains("the output is the input", stderr);
        Assert.Equal(hash, CliHarness.Hash(input));
    }

    [UnixOnlyFact]
    public void Transfer_OutputThroughSymlinkedFolder_Exit2AndTemplateAndSourceIntact()
    {
        var (template, through) = LinkedFolder();
        var source = Checkpoint(_h.PathOf("src.safetensors"));
        var hashes = (CliHarness.Hash(source), CliHarness.Hash(template));
        var (code, _, stderr) = _h.Run("transfer", source, "--into", template, "--out", through, "--out-format", "pytorch");
        Assert.Equal(2, code);
        Assert.Contains("the output is the template", stderr);
        var (code2, _, _) = _h.Run("transfer", template, "--into", source, "--out", through, "--out-format", "pytorch");
        Assert.Equal(2, code2);
        Assert.Equal(hashes, (CliHarness.Hash(source), CliHarness.Hash(template)));
    }

    [UnixOnlyFact]
    public void Transfer_ReportThroughSymlinkedFolder_Exit2AndSourceIntact()
    {
        var (source, through) = LinkedFolder();
        var template = Checkpoint(_h.PathOf("tpl.safetensors"));
        var hash = CliHarness.Hash(source);
        var (code, _, _) = _h.Run("transfer", source, "--into", template, "--out", _h.PathOf("out.safetensors"), "--report", through);
        Assert.Equal(2, code);
        Assert.Equal(hash, CliHarness.Hash(source));
    }

    [UnixOnlyFact]
    public void Convert_HardLinkToInputAsOutput_Exit2AndInputIntact()
    {
        var input = Checkpoint(_h.PathOf("in.safetensors"));
        var hard = SpecialFiles.HardLink(input, _h.PathOf("hl.safetensors"));
        var hash = CliHarness.Hash(input);
        var (code, _, _) = _h.Run("convert", input, hard);
        Assert.Equal(2, code);
        Assert.Equal(hash, CliHarness.Hash(input));
    }

    [UnixOnlyFact]
    public void InspectConvertTransfer_FifoInput_Exit4WithoutBlocking()
    {
        var fifo = SpecialFiles.MakeFifo(_h.PathOf("fifo.safetensors"));
        var ok = Checkpoint(_h.PathOf("ok.safetensors"));
        foreach (var args in new[]
        {
            new[] { "inspect", fifo },
            ["convert", fifo, _h.PathOf("out.safetensors")],
            ["transfer", fifo, "--into", ok, "--out", _h.PathOf("out.safetensors")],
            ["transfer", ok, "--into", fifo, "--out", _h.PathOf("out.safetensors")],
        })
        {
            var (code, _, stderr) = SpecialFiles.WithinSeconds(30, () => _h.Run(args), fifo);
            Assert.True(code == 4, $"graft {string.Join(' ', args)}: exit {code}: {stderr}");
            Assert.Contains("named pipe", stderr);
        }
        Assert.False(File.Exists(_h.PathOf("out.safetensors")));
    }

    [UnixOnlyFact]
    public void Convert_OutputIsFifoOrLinkToDevNull_Exit2AndNothingReplaced()
    {
        var input = Checkpoint(_h.PathOf("in.safetensors"));
        var fifo = SpecialFiles.MakeFifo(_h.PathOf("fifo.safetensors"));
        var devnull = _h.PathOf("null.safetensors");
        File.CreateSymbolicLink(devnull, "/dev/null");
        foreach (var output in new[] { fifo, devnull })
        {
            var (code, _, stderr) = SpecialFiles.WithinSeconds(30, () => _h.Run("convert", input, output), fifo);
            Assert.True(code == 2, $"{output}: exit {code}: {stderr}");
        }
        Assert.Equal("/dev/null", new FileInfo(devnull).LinkTarget);
        Assert.Equal(["fifo.safetensors", "in.safetensors", "null.safetensors"], _h.Files());
    }

    [Theory]
    [InlineData(239)]
    [InlineData(252)]
    [InlineData(255)]
    public void Convert_OutputNameUpToNameMax_Exit0(int length)
    {
        var input = Checkpoint(_h.PathOf("in.safetensors"));
        var name = new string('o', length - ".safetensors".Length) + ".safetensors";
        var (code, _, stderr) = _h.Run("convert", input, _h.PathOf(name));
        Assert.True(code == 0, stderr);
        Assert.Equal(["in.safetensors", name], _h.Files());
    }
}
