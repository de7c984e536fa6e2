namespace Graft.Checkpoints.PyTorch;

/// <summary>
/// PyTorch's <c>torch.save</c> checkpoints (<c>.pt</c>, <c>.pth</c>, <c>.bin</c>, <c>.ckpt</c>), read through a
/// restricted unpickler that never runs pickled code, written in the layout <c>torch.load(weights_only=True)</c> accepts.
/// </summary>
public sealed class PyTorchFormat : ICheckpointFormat
{
    /// <inheritdoc/>
    public string Name => "pytorch";

    /// <inheritdoc/>
    public string DisplayName => "PyTorch";

    /// <inheritdoc/>
    public IReadOnlyList<string> Extensions { get; } = [".pt", ".pth", ".bin", ".ckpt"];

    /// <inheritdoc/>
    public bool CanWrite => true;

    /// <summary>
    /// A zip local header (<c>PK\x03\x04</c>, the layout since PyTorch 1.6) or the legacy layout's first pickle,
    /// protocol 2 opening with a 10-byte LONG1 (the magic number).
    /// </summary>
    public bool Sniff(ReadOnlySpan<byte> head) =>
        head.StartsWith("PK\x03\x04"u8) || head.StartsWith((ReadOnlySpan<byte>)[0x80, 0x02, 0x8a, 0x0a]);

    /// <summary>Opens the default dictionary of tensors; use <see cref="PyTorchReader.Open"/> to choose another.</summary>
    public ICheckpointReader Open(string path) => PyTorchReader.Open(path);

    /// <summary>Opens the dictionary of tensors at <paramref name="key"/> (a dotted path: <c>model</c>, <c>state.ema</c>).</summary>
    public ICheckpointReader Open(string path, string key) => PyTorchReader.Open(path, key);

    /// <summary>
    /// Writes a state dict. PyTorch checkpoints have no place for string metadata that every loader keeps, so
    /// <paramref name="metadata"/> is not written.
    /// </summary>
    public void Write(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        PyTorchWriter.Write(path, tensors);
}
