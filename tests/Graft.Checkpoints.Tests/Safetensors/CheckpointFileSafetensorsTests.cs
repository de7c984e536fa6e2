using Graft.Checkpoints.Safetensors;

namespace Graft.Checkpoints.Tests.Safetensors;

public sealed class CheckpointFileSafetensorsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Formats_Registry_ContainsSafetensors()
    {
        Assert.Contains(SafetensorsFormat.Instance, CheckpointFile.Formats);
        Assert.Same(SafetensorsFormat.Instance, CheckpointFile.GetFormat("SafeTensors"));
        Assert.True(SafetensorsFormat.Instance.CanWrite);
        Assert.Equal([".safetensors"], SafetensorsFormat.Instance.Extensions);
    }

    [Fact]
    public void DetectFormat_SafetensorsExtension_ReturnsSafetensors()
    {
        var path = _dir.Write("model.SafeTensors", SafetensorsReaderTests.PythonReferenceFile());
        Assert.Same(SafetensorsFormat.Instance, CheckpointFile.DetectFormat(path));
    }

    [Fact]
    public void DetectFormat_BinFileWithSafetensorsContent_ReturnsSafetensorsByContent()
    {
        var path = _dir.Write("pytorch_model.bin", SafetensorsReaderTests.PythonReferenceFile());
        Assert.Same(SafetensorsFormat.Instance, CheckpointFile.DetectFormat(path));
    }

    [Fact]
    public void DetectFormat_UnclaimedExtensionWithOtherContent_ThrowsUnsupported()
    {
        var path = _dir.Write("model.weights", "neither safetensors nor a zip"u8.ToArray());
        var ex = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.DetectFormat(path));
        Assert.Equal(CheckpointErrorKind.Unsupported, ex.Kind);
    }

    [Fact]
    public void Open_BinFileWithSafetensorsContent_ReadsTensors()
    {
        var path = _dir.Write("weights.bin", SafetensorsReaderTests.PythonReferenceFile());
        using var r = CheckpointFile.Open(path);
        Assert.IsType<SafetensorsReader>(r);
        Assert.Equal("safetensors", r.Format);
        Assert.Equal("a", Assert.Single(r.Tensors).Name);
    }

    [Fact]
    public void Open_ExplicitFormat_OverridesDetection()
    {
        var path = _dir.Write("weights.dat", SafetensorsReaderTests.PythonReferenceFile());
        using var r = CheckpointFile.Open(path, "safetensors");
        Assert.Single(r.Tensors);
    }

    [Fact]
    public void Write_SafetensorsExtension_WritesReadableFile()
    {
        var path = _dir.File("out.safetensors");
        CheckpointFile.Write(path, [TensorPayload.FromBytes("w", DType.I16, new Shape(2, 2), new byte[8])], new Dictionary<string, string> { ["k"] = "v" });
        using var r = CheckpointFile.Open(path);
        Assert.Equal(new TensorInfo("w", DType.I16, new Shape(2, 2), 8), Assert.Single(r.Tensors));
        Assert.Equal("v", r.Metadata["k"]);
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 56, 0, 0, 0, 0, 0, 0, 0 })] // no byte after the length
    [InlineData(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, (byte)'{' })] // header too short to be an object
    [InlineData(new byte[] { 1, 0xE1, 0xF5, 0x05, 0, 0, 0, 0, (byte)'{' })] // 100,000,001: over the cap
    [InlineData(new byte[] { 56, 0, 0, 0, 0, 0, 0, 0, (byte)'[' })]
    [InlineData(new byte[] { (byte)'P', (byte)'K', 3, 4, 20, 0, 0, 0, 0, 0 })] // zip local header (PyTorch): byte 8 is the compression method
    public void Sniff_ImplausiblePrefix_ReturnsFalse(byte[] head) =>
        Assert.False(SafetensorsFormat.Instance.Sniff(head));

    [Fact]
    public void Sniff_PlausiblePrefix_ReturnsTrue()
    {
        Assert.True(SafetensorsFormat.Instance.Sniff(SafetensorsReaderTests.PythonReferenceFile()));
        Assert.True(SafetensorsFormat.Instance.Sniff(new byte[] { 0, 0xE1, 0xF5, 0x05, 0, 0, 0, 0, (byte)'{' })); // exactly the cap
    }
}
