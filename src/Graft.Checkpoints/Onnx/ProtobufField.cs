namespace Graft.Checkpoints.Onnx;

/// <summary>One protobuf field: where its tag starts and ends, where its value lies, and a varint's value.</summary>
internal sealed record ProtobufField(int Number, int WireType, long TagStart, long TagEnd, long ValueStart, long End, ulong Varint)
{
    public long ValueLength => End - ValueStart;
}
