using System.Buffers.Binary;

namespace Graft.Checkpoints.Safetensors;

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header, then raw tensor bytes.
/// The registry entry through which <see cref="CheckpointFile"/> reaches <see cref="SafetensorsReader"/> and
/// <see cref="SafetensorsWriter"/>.
/// </summary>
public sealed class SafetensorsFormat : ICheckpointFormat
{
    private SafetensorsFormat()
    {
    }

    /// <summary>The one instance; the format has no state, so the registry and callers share it.</summary>
    public static SafetensorsFormat Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => "safetensors";

    /// <inheritdoc/>
    public IReadOnlyList<string> Extensions { get; } = [".safetensors"];

    /// <inheritdoc/>
    public bool CanWrite => true;

    /// <inheritdoc/>
    /// <remarks>
    /// Accepts a plausible header length (at least <c>{}</c>, at most the reader's cap) followed by <c>{</c>; that
    /// combination is unlikely in a zip (PyTorch), a pickle or a protobuf, and costs nothing to check.
    /// </remarks>
    public bool Sniff(ReadOnlySpan<byte> head)
    {
        if (head.Length < 9)
        {
            return false;
        }
        var n = BinaryPrimitives.ReadUInt64LittleEndian(head);
        return n >= 2 && n <= SafetensorsReader.MaxHeaderLength && head[8] == (byte)'{';
    }

    /// <inheritdoc/>
    public ICheckpointReader Open(string path) => SafetensorsReader.Open(path);

    /// <inheritdoc/>
    public void Write(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        SafetensorsWriter.Write(path, tensors, metadata);
}
