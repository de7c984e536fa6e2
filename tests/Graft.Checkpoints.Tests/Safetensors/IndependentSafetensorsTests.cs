using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using Graft.Checkpoints.Safetensors;
using Graft.TestSupport;

namespace Graft.Checkpoints.Tests.Safetensors;

/// <summary>
/// An oracle that is not Graft's: <c>tests/fixtures/safetensors/independent.safetensors</c> was written by a writer of
/// twenty lines of Python from the specification (<c>make_safetensors_fixtures.py</c>) with tensors from real PyTorch,
/// and its manifest holds, per tensor, what PyTorch says: dtype, shape, SHA-256 of the bytes, first values. The reader
/// must read exactly that; the writer, given the same tensors, must write the same file byte for byte.
/// </summary>
public sealed class IndependentSafetensorsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Folder => Path.Combine(RepoPaths.Fixtures(), "safetensors");

    private static string FilePath => Path.Combine(Folder, "independent.safetensors");

    private sealed record Expected(string Name, string DType, long[] Shape, string Sha256, JsonElement[] First);

    private static (IReadOnlyDictionary<string, string> Metadata, List<Expected> Tensors) Manifest()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "manifest.json")));
        var root = doc.RootElement;
        var metadata = root.GetProperty("metadata").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal);
        var tensors = root.GetProperty("tensors").EnumerateArray().Select(t => new Expected(
            t.GetProperty("name").GetString()!,
            t.GetProperty("dtype").GetString()!,
            t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray(),
            t.GetProperty("sha256").GetString()!,
            t.GetProperty("first").EnumerateArray().Select(v => v.Clone()).ToArray())).ToList();
        return (metadata, tensors);
    }

    /// <summary>Element <paramref name="i"/> of <paramref name="bytes"/> as PyTorch's <c>tolist()</c> gives it.</summary>
    private static object Element(ReadOnlySpan<byte> bytes, string dtype, int i) => dtype switch
    {
        "F32" => (double)BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]),
        "F64" => BinaryPrimitives.ReadDoubleLittleEndian(bytes[(i * 8)..]),
        "F16" => (double)BinaryPrimitives.ReadHalfLittleEndian(bytes[(i * 2)..]),
        "BF16" => (double)BitConverter.UInt32BitsToSingle((uint)BinaryPrimitives.ReadUInt16LittleEndian(bytes[(i * 2)..]) << 16),
        "I64" => BinaryPrimitives.ReadInt64LittleEndian(bytes[(i * 8)..]),
        "I32" => (long)BinaryPrimitives.ReadInt32LittleEndian(bytes[(i * 4)..]),
        "I16" => (long)BinaryPrimitives.ReadInt16LittleEndian(bytes[(i * 2)..]),
        "I8" => (long)(sbyte)bytes[i],
        "U8" => (long)bytes[i],
        "BOOL" => bytes[i] switch { 0 => false, 1 => true, var b => throw new Xunit.Sdk.XunitException($"bool byte {b}") },
        _ => throw new Xunit.Sdk.XunitException("dtype " + dtype),
    };

    [Fact]
    public void Open_FileWrittenByAnotherImplementation_ReadsEveryTensorAsPyTorchMadeIt()
    {
        var (metadata, expected) = Manifest();
        Assert.Equal(14, expected.Count);
        using var reader = SafetensorsReader.Open(FilePath);
        Assert.Equal(expected.Select(e => e.Name), reader.Tensors.Select(t => t.Name));
        Assert.Equal(metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal), reader.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal));
        var values = 0;
        foreach (var e in expected)
        {
            Assert.True(reader.TryGetTensor(e.Name, out var t), e.Name);
            Assert.Equal(e.DType, t.DType.SafetensorsName());
            Assert.Equal(e.Shape, t.Shape.ToArray());
            var bytes = new byte[t.ByteLength];
            reader.ReadBytes(t, bytes);
            Assert.Equal(e.Sha256, Convert.ToHexStringLower(SHA256.HashData(bytes)));
            for (var i = 0; i < e.First.Length; i++)
            {
                var actual = Element(bytes, e.DType, i);
                var want = e.First[i];
                var same = actual switch
                {
                    double d => want.ValueKind == JsonValueKind.Number && d == want.GetDouble(), // false on NaN
                    long l => want.ValueKind == JsonValueKind.Number && l == want.GetInt64(),
                    bool b => want.ValueKind == (b ? JsonValueKind.True : JsonValueKind.False),
                    _ => false,
                };
                Assert.True(same, $"{e.Name}[{i}]: Graft read {actual}, PyTorch had {want}");
                values++;
            }
        }
        Assert.True(values >= 40, $"only {values} values compared");
    }

    [Fact]
    public void Write_SameTensors_GivesTheOtherImplementationsFileByteForByte()
    {
        var (metadata, expected) = Manifest();
        var original = File.ReadAllBytes(FilePath);
        using var reader = SafetensorsReader.Open(FilePath);
        // The tensors as values (names, dtypes, shapes, bytes), in the manifest's order; the reader's bytes are the
        // manifest's (checked above by SHA-256), so this checks the writer's layout: header, order, offsets, padding.
        var payloads = expected.Select(e =>
        {
            Assert.True(reader.TryGetTensor(e.Name, out var t), e.Name);
            var bytes = new byte[t.ByteLength];
            reader.ReadBytes(t, bytes);
            Assert.Equal(e.Sha256, Convert.ToHexStringLower(SHA256.HashData(bytes)));
            return TensorPayload.FromBytes(e.Name, t.DType, new Shape(e.Shape), bytes);
        }).ToList();
        var path = _dir.File("graft.safetensors");
        SafetensorsWriter.Write(path, payloads, metadata);
        var written = File.ReadAllBytes(path);
        Assert.Equal(original.Length, written.Length);
        var first = original.AsSpan().CommonPrefixLength(written);
        Assert.True(first == original.Length, $"Graft's file differs from the independent writer's at byte {first} of {original.Length}");
    }
}
