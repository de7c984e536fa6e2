namespace Graft.Checkpoints;

/// <summary>
/// What a checkpoint says about one tensor, without its data: name, element type, shape, and where its bytes are.
/// </summary>
/// <param name="Name">The tensor's key in the checkpoint (for example <c>features.0.weight</c>).</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions.</param>
/// <param name="ByteLength">Number of bytes of data; always <c>Shape.ElementCount × DType.ElementSize()</c>.</param>
public sealed record TensorInfo(string Name, DType DType, Shape Shape, long ByteLength)
{
    /// <summary>Number of elements.</summary>
    public long ElementCount => Shape.ElementCount;
}
