namespace Graft.Checkpoints.TorchSharpFormat;

/// <summary>
/// TorchSharp's own <c>Module.save</c> format (<c>.dat</c> by convention): a LEB128 entry count, then per entry a .NET
/// <c>BinaryWriter</c> string, LEB128 scalar type, rank and dimensions, and the raw bytes. The registry entry through
/// which <see cref="CheckpointFile"/> reaches <see cref="TorchSharpReader"/> and <see cref="TorchSharpWriter"/>.
/// </summary>
public sealed class TorchSharpCheckpointFormat : ICheckpointFormat
{
    internal const string FormatName = "torchsharp";

    private TorchSharpCheckpointFormat()
    {
    }

    /// <summary>The one instance; the format has no state.</summary>
    public static TorchSharpCheckpointFormat Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => FormatName;

    /// <inheritdoc/>
    public string DisplayName => "TorchSharp";

    /// <inheritdoc/>
    public IReadOnlyList<string> Extensions { get; } = [".dat"];

    /// <inheritdoc/>
    public bool CanWrite => true;

    /// <summary>
    /// Always false: the file starts with a bare entry count, which any file could start with, so only the extension
    /// (or an explicit format name) selects this format.
    /// </summary>
    public bool Sniff(ReadOnlySpan<byte> head) => false;

    /// <inheritdoc/>
    public ICheckpointReader Open(string path) => TorchSharpReader.Open(path);

    /// <summary>Writes a state dict; the format has no place for metadata, so <paramref name="metadata"/> is not written.</summary>
    public void Write(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        TorchSharpWriter.Write(path, tensors);
}
