using System.Buffers.Binary;
using System.Text;
using Graft.Checkpoints.PyTorch;
using Graft.Checkpoints.Tests.PyTorch;
using Graft.Checkpoints.Safetensors;
using Graft.Fuzz;

namespace Graft.Checkpoints.Tests.Fuzz;

/// <summary>
/// Every crash the fuzzer found, as its minimised input, written out byte by byte. Each must now be refused with a
/// <see cref="CheckpointFormatException"/> of the named kind, and pass the fuzz target (no other exception, bounded
/// allocation).
/// </summary>
public sealed class FuzzRegressionTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Safetensors(string header)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        return bytes;
    }

    private void AssertRefused(string format, byte[] input, CheckpointErrorKind kind)
    {
        var path = _dir.File("input" + FuzzTarget.Extension(CheckpointFile.GetFormat(format)));
        File.WriteAllBytes(path, input);
        var ex = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.GetFormat(format).Open(path).Dispose());
        Assert.Equal(kind, ex.Kind);
        var outcome = SmokeRunner.RunOne(CheckpointFile.GetFormat(format), path, input, TimeSpan.FromSeconds(20));
        Assert.Equal(OutcomeKind.Rejected, outcome.Kind);
    }

    // Found by `smoke --seed 1`: a JSON token replaced by "\ud800". The bytes are valid UTF-8 and valid JSON syntax, but
    // the escape decodes to a lone surrogate, and Utf8JsonReader.GetString threw InvalidOperationException.
    [Theory]
    [InlineData("{\"\\ud800\":{}}")] // tensor name
    [InlineData("{\"a\":{\"dtype\":\"\\ud800\",\"shape\":[],\"data_offsets\":[0,0]}}")] // dtype
    [InlineData("{\"__metadata__\":{\"\\udc00\":\"v\"}}")] // metadata key
    [InlineData("{\"__metadata__\":{\"k\":\"x\\ud800\"}}")] // metadata value
    public void Safetensors_EscapedLoneSurrogate_ThrowsHeaderNotJson(string header) =>
        AssertRefused("safetensors", Safetensors(header), CheckpointErrorKind.HeaderNotJson);

    [Fact]
    public void Safetensors_EscapedSurrogatePair_IsAccepted()
    {
        var path = _dir.File("pair.safetensors");
        File.WriteAllBytes(path, Safetensors("{\"__metadata__\":{\"k\":\"\\ud83d\\ude00\"}}"));
        using var reader = SafetensorsReader.Open(path);
        Assert.Equal("\U0001F600", reader.Metadata["k"]);
    }

    // Found by `smoke --seed 20240601`: the name "int" replaced by "". Graft's payloads and lookups need a name, so the
    // reader accepted a tensor nothing downstream could handle.
    [Fact]
    public void Safetensors_EmptyTensorName_ThrowsInvalidHeader() =>
        AssertRefused("safetensors", Safetensors("{\"\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,0]}}"), CheckpointErrorKind.InvalidHeader);

    // The same rule in the PyTorch reader: {"": tensor} is a dictionary of tensors torch.save writes without complaint.
    [Fact]
    public void PyTorch_EmptyTensorName_ThrowsCorrupt()
    {
        var pkl = Pickle.Assemble(
        [
            (byte)0x80, (byte)2, Pickle.OrderedDict, ')', 'R',
            '(', "", Pickle.Rebuild,
            '(', .. Pickle.Tuple("storage", Pickle.FloatStorage, "0", "cpu", 1L), 'Q', 0L, .. Pickle.Tuple(1L), .. Pickle.Tuple(1L), (byte)0x89,
            Pickle.OrderedDict, ')', 'R', 't', 'R',
            'u', '.',
        ]);
        var path = _dir.File("empty-name.pt");
        Pickle.WriteCheckpoint(path, pkl, [("0", new byte[4])]);
        AssertRefused("pytorch", File.ReadAllBytes(path), CheckpointErrorKind.Corrupt);
    }
}
