namespace Graft.Checkpoints;

/// <summary>
/// What a checkpoint says about one tensor, without its data: name, element type, shape, and where its bytes are.
/// </summary>
/// <param name="Name">The tensor's key in the checkpoint (for example <c>features.0.weight</c>).</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions.</param>
/// <param name="ByteLength">Number of bytes of data; always <c>Shape.ElementCount × DType.ElementSize()</c>.</param>
/// <exception cref="ArgumentException"><paramref name="ByteLength"/> is not the shape's element count times the dtype's size.</exception>
public sealed record TensorInfo(string Name, DType DType, Shape Shape, long ByteLength)
{
    /// <summary>Number of bytes of data: always <c>Shape.ElementCount × DType.ElementSize()</c>, checked when set.</summary>
    public long ByteLength { get; init; } = Checked(Name, DType, Shape, ByteLength);

    private static long Checked(string name, DType dtype, Shape shape, long byteLength)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        long expected;
        try
        {
            expected = checked(shape.ElementCount * dtype.ElementSize());
        }
        catch (OverflowException)
        {
            throw new ArgumentException($"Tensor '{name}': shape {shape} of {dtype} overflows 64 bits.", nameof(shape));
        }
        if (byteLength != expected)
        {
            throw new ArgumentException($"Tensor '{name}': {byteLength} bytes given, but shape {shape} of {dtype} is {expected} bytes.", nameof(byteLength));
        }
        return byteLength;
    }

    /// <summary>Number of elements.</summary>
    public long ElementCount => Shape.ElementCount;

    /// <summary>
    /// A tensor as a reader declares it: its byte length computed from shape and dtype, or the file refused as
    /// <see cref="CheckpointErrorKind.SizeOverflow"/> when that does not fit in 64 bits.
    /// </summary>
    internal static TensorInfo Declared(string path, string name, DType dtype, Shape shape)
    {
        try
        {
            return new TensorInfo(name, dtype, shape, checked(shape.ElementCount * dtype.ElementSize()));
        }
        catch (OverflowException)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.SizeOverflow, path, name, $"shape {shape} of {dtype} overflows 64 bits.");
        }
    }
}
