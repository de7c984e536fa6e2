namespace Graft.Checkpoints;

/// <summary>
/// One checkpoint file format: how to recognise it, open it and (if supported) write it.
/// Formats register in <see cref="CheckpointFile.Formats"/>, and reading, detecting and writing go through them. A few
/// places still test for one format because that format adds a behaviour this interface has no member for: a sharded
/// safetensors output replaces several files (<c>CheckpointFile.EnsureOutputSparesInputs</c>, <c>CheckpointFile.Write</c>
/// with a shard size, and <c>CheckpointFile.Convert</c>'s listing of what it wrote), an ONNX output keeps its template's graph
/// (<c>WeightTransfer.Files</c>), and <c>graft convert</c>'s PyTorch-only option checks for PyTorch input.
/// </summary>
public interface ICheckpointFormat
{
    /// <summary>Short name used by <c>--format</c> and in reports (<c>safetensors</c>, <c>pytorch</c> …).</summary>
    string Name { get; }

    /// <summary>File name endings this format claims, lower case with the dot (<c>.safetensors</c>).</summary>
    IReadOnlyList<string> Extensions { get; }

    /// <summary>True when this format can write files.</summary>
    bool CanWrite { get; }

    /// <summary>
    /// True when the first bytes of a file (up to 64, fewer for a short file) look like this format.
    /// Used when the extension says nothing; a cheap, conservative check.
    /// </summary>
    bool Sniff(ReadOnlySpan<byte> head);

    /// <summary>Opens and validates a file. Throws <see cref="CheckpointFormatException"/> for a malformed file.</summary>
    ICheckpointReader Open(string path);

    /// <summary>
    /// Writes tensors (in the given order) and metadata to <paramref name="path"/> atomically: on failure the
    /// destination is untouched. Throws <see cref="NotSupportedException"/> when <see cref="CanWrite"/> is false.
    /// </summary>
    void Write(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null);
}
