namespace Graft.Checkpoints;

/// <summary>
/// An open, validated checkpoint. Opening reads and checks the header only; tensor bytes are read on demand,
/// so listing a multi-gigabyte file costs the same as listing a small one.
/// </summary>
public interface ICheckpointReader : IDisposable
{
    /// <summary>The path the checkpoint was opened from.</summary>
    string Path { get; }

    /// <summary>Short format name, for reports (<c>safetensors</c>, <c>pytorch</c> …).</summary>
    string Format { get; }

    /// <summary>The tensors, in file order.</summary>
    IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>String metadata stored with the checkpoint (empty when the format has none).</summary>
    IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Looks a tensor up by name.</summary>
    bool TryGetTensor(string name, out TensorInfo info);

    /// <summary>
    /// Copies a tensor's raw little-endian bytes, in row-major (C-contiguous) order, into <paramref name="destination"/>,
    /// which must be exactly <see cref="TensorInfo.ByteLength"/> long.
    /// </summary>
    void ReadBytes(TensorInfo tensor, Span<byte> destination);

    /// <summary>
    /// Streams a tensor's raw bytes to <paramref name="destination"/> in bounded chunks, without materialising it.
    /// </summary>
    void CopyTo(TensorInfo tensor, Stream destination);
}
