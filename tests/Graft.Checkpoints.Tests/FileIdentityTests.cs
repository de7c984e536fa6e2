using Graft.Checkpoints.Onnx;
using Graft.Checkpoints.Safetensors;
using Graft.Checkpoints.Sharded;
using Graft.Checkpoints.Tests.Onnx;
using Graft.TestSupport;

namespace Graft.Checkpoints.Tests;

/// <summary>
/// Inputs are read from regular files only (a FIFO would block open() forever), and files are compared by identity
/// (device and inode), so no link, linked folder or hard link can make an output replace an input.
/// </summary>
public sealed class FileIdentityTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static TensorPayload Payload(string name) => TensorPayload.FromBytes(name, DType.U8, new Shape(2), new byte[] { 1, 2 });

    private string Checkpoint(string name)
    {
        var path = _dir.File(name);
        CheckpointFile.Write(path, [Payload("a")]);
        return path;
    }

    private static void ExpectNotRegular(Action open, string fifo, string named)
    {
        var ex = SpecialFiles.WithinSeconds(20, () => Record.Exception(open), fifo);
        var e = Assert.IsType<CheckpointFormatException>(ex);
        Assert.Equal(CheckpointErrorKind.NotRegularFile, e.Kind);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }

    [UnixOnlyFact]
    public void Open_FifoInEveryFormat_ThrowsNotRegularFileWithoutBlocking()
    {
        foreach (var format in CheckpointFile.Formats)
        {
            var fifo = SpecialFiles.MakeFifo(_dir.File("fifo-" + format.Name + format.Extensions[0]));
            ExpectNotRegular(() => format.Open(fifo).Dispose(), fifo, fifo);
            ExpectNotRegular(() => CheckpointFile.Open(fifo).Dispose(), fifo, fifo);
        }
    }

    [UnixOnlyFact]
    public void Open_ShardThatIsAFifo_ThrowsNotRegularFile()
    {
        var fifo = SpecialFiles.MakeFifo(_dir.File("s1.safetensors"));
        var index = _dir.File("model.safetensors.index.json");
        File.WriteAllText(index, """{"metadata":{},"weight_map":{"a":"s1.safetensors"}}""");
        ExpectNotRegular(() => ShardedSafetensorsReader.Open(index).Dispose(), fifo, "s1.safetensors");
    }

    [UnixOnlyFact]
    public void Open_OnnxExternalDataThatIsAFifo_ThrowsNotRegularFile()
    {
        var fifo = SpecialFiles.MakeFifo(_dir.File("w.bin"));
        var model = _dir.Write("m.onnx", OnnxBytes.Model(OnnxBytes.External("w", [2], "w.bin", offset: 0, length: 8)));
        ExpectNotRegular(() => OnnxReader.Open(model).Dispose(), fifo, "w.bin");
    }

    [UnixOnlyFact]
    public void Open_CharacterDevice_ThrowsNotRegularFile() =>
        ExpectNotRegular(() => SafetensorsReader.Open("/dev/zero").Dispose(), _dir.File("none"), "/dev/zero");

    [UnixOnlyFact]
    public void IsSameFile_HardLinkSymlinkAndLinkedFolder_AreTheSameFile()
    {
        var input = Checkpoint("in.safetensors");
        var hard = SpecialFiles.HardLink(input, _dir.File("hard.safetensors"));
        var linkedFolder = _dir.File("linked");
        Directory.CreateSymbolicLink(linkedFolder, _dir.Path);
        var soft = _dir.File("soft.safetensors");
        File.CreateSymbolicLink(soft, input);
        Assert.True(CheckpointFile.IsSameFile(input, hard));
        Assert.True(CheckpointFile.IsSameFile(input, soft));
        Assert.True(CheckpointFile.IsSameFile(input, Path.Combine(linkedFolder, "in.safetensors")));
        Assert.False(CheckpointFile.IsSameFile(input, Checkpoint("other.safetensors")));
        Assert.False(CheckpointFile.IsSameFile(input, _dir.File("missing.safetensors")));
    }

    [UnixOnlyFact]
    public void EnsureOutputSparesInputs_OutputThroughLinkedFolder_Throws()
    {
        var input = Checkpoint("in.safetensors");
        var linkedFolder = _dir.File("linked");
        Directory.CreateSymbolicLink(linkedFolder, _dir.Path);
        using var reader = CheckpointFile.Open(input);
        var ex = Assert.Throws<InvalidInputException>(() => CheckpointFile.EnsureOutputSparesInputs(
            Path.Combine(linkedFolder, "in.safetensors"), CheckpointFile.GetFormat("pytorch"), (reader, "input")));
        Assert.Contains("the output is the input", ex.Message, StringComparison.Ordinal);
    }

    [UnixOnlyFact]
    public void EnsureOutputSparesInputs_HardLinkToInput_Throws()
    {
        var input = Checkpoint("in.safetensors");
        var hard = SpecialFiles.HardLink(input, _dir.File("hard.safetensors"));
        using var reader = CheckpointFile.Open(input);
        Assert.Throws<InvalidInputException>(() => CheckpointFile.EnsureOutputSparesInputs(hard, SafetensorsFormat.Instance, (reader, "input")));
    }

    [UnixOnlyFact]
    public void EnsureOutputSparesInputs_OnnxExternalDataAsOutput_Throws()
    {
        File.WriteAllBytes(_dir.File("w.bin"), new byte[8]);
        var model = _dir.Write("m.onnx", OnnxBytes.Model(OnnxBytes.External("w", [2], "w.bin", offset: 0, length: 8)));
        using var reader = OnnxReader.Open(model);
        Assert.Throws<InvalidInputException>(() => CheckpointFile.EnsureOutputSparesInputs(_dir.File("w.bin"), SafetensorsFormat.Instance, (reader, "template")));
    }
}
