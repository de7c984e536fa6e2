namespace Graft.Checkpoints;

/// <summary>
/// A tensor to be written: its description and a way to produce its bytes when the writer reaches it, so that writers
/// can stream tensors straight from a source checkpoint without holding a whole checkpoint in memory.
/// </summary>
public abstract class TensorPayload
{
    /// <summary>Describes the tensor; <paramref name="name"/>, dtype and shape are what the writer records.</summary>
    protected TensorPayload(string name, DType dtype, Shape shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        Name = name;
        DType = dtype;
        Shape = shape;
        ByteLength = checked(shape.ElementCount * dtype.ElementSize());
    }

    /// <summary>Key in the output checkpoint.</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Dimensions.</summary>
    public Shape Shape { get; }

    /// <summary>Exact number of bytes <see cref="WriteTo"/> writes.</summary>
    public long ByteLength { get; }

    /// <summary>Writes exactly <see cref="ByteLength"/> bytes (little-endian, row-major) to <paramref name="destination"/>.</summary>
    public abstract void WriteTo(Stream destination);

    /// <summary>
    /// True when the bytes must be computed before the first one can be written (a transformed tensor), false when they
    /// stream from memory or a file. Writers whose format leaves the data order free (safetensors) put computed payloads
    /// after the streamed ones, so that whatever the computation waits for (loading libtorch) overlaps the streaming.
    /// </summary>
    public virtual bool IsComputed => false;

    /// <summary>
    /// Writes the bytes straight into <paramref name="destination"/> (exactly <see cref="ByteLength"/> long) when that
    /// costs no intermediate buffer (a tensor read from a checkpoint lands in the destination by one positioned read;
    /// bytes in memory by one copy); returns false when the payload can only stream (<see cref="WriteTo"/>).
    /// </summary>
    internal virtual bool TryReadInto(Span<byte> destination) => false;

    /// <summary>
    /// A payload that writes exactly like <paramref name="inner"/> and then calls <paramref name="written"/> (for
    /// progress): writers may list every payload before writing any, so progress must come from the writes themselves.
    /// </summary>
    public static TensorPayload Observed(TensorPayload inner, Action<TensorPayload> written)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(written);
        return new ObservedPayload(inner, written);
    }

    /// <summary>A payload over bytes already in memory.</summary>
    public static TensorPayload FromBytes(string name, DType dtype, Shape shape, ReadOnlyMemory<byte> bytes) =>
        new MemoryPayload(name, dtype, shape, bytes);

    /// <summary>A payload that streams a tensor from an open checkpoint, optionally under a new name.</summary>
    public static TensorPayload FromCheckpoint(ICheckpointReader reader, TensorInfo tensor, string? name = null) =>
        new CheckpointPayload(reader, tensor, name ?? tensor.Name);

    private sealed class ObservedPayload(TensorPayload inner, Action<TensorPayload> written) : TensorPayload(inner.Name, inner.DType, inner.Shape)
    {
        public override bool IsComputed => inner.IsComputed;

        public override void WriteTo(Stream destination)
        {
            inner.WriteTo(destination);
            written(inner);
        }

        internal override bool TryReadInto(Span<byte> destination)
        {
            if (!inner.TryReadInto(destination))
            {
                return false;
            }
            written(inner);
            return true;
        }
    }

    private sealed class MemoryPayload : TensorPayload
    {
        private readonly ReadOnlyMemory<byte> _bytes;

        public MemoryPayload(string name, DType dtype, Shape shape, ReadOnlyMemory<byte> bytes) : base(name, dtype, shape)
        {
            if (bytes.Length != ByteLength)
            {
                throw new ArgumentException($"Tensor '{name}' {shape} {dtype} needs {ByteLength} bytes, got {bytes.Length}.", nameof(bytes));
            }
            _bytes = bytes;
        }

        public override void WriteTo(Stream destination) => destination.Write(_bytes.Span);

        internal override bool TryReadInto(Span<byte> destination)
        {
            _bytes.Span.CopyTo(destination);
            return true;
        }
    }

    private sealed class CheckpointPayload : TensorPayload
    {
        private readonly ICheckpointReader _reader;
        private readonly TensorInfo _tensor;

        public CheckpointPayload(ICheckpointReader reader, TensorInfo tensor, string name) : base(name, tensor.DType, tensor.Shape)
        {
            _reader = reader;
            _tensor = tensor;
        }

        public override void WriteTo(Stream destination) => _reader.CopyTo(_tensor, destination);

        internal override bool TryReadInto(Span<byte> destination)
        {
            _reader.ReadBytes(_tensor, destination);
            return true;
        }
    }
}
