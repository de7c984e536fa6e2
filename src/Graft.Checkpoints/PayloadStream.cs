namespace Graft.Checkpoints;

/// <summary>
/// Passes a payload's writes through to the destination, counting them and refusing any byte past the payload's
/// declared length, so a lying payload cannot shift every later tensor. Shared by every writer, because each format
/// records lengths or offsets before the bytes and would otherwise describe data it did not write.
/// Disposing it leaves the destination open: the writer owns that stream, not the payload.
/// </summary>
internal sealed class PayloadStream(Stream inner, TensorPayload payload) : Stream
{
    public long Written { get; private set; }

    /// <summary>The stream the payload's bytes go to, for copies that bypass this one (<see cref="FileCopy"/>).</summary>
    public Stream Inner => inner;

    /// <summary>True when <paramref name="count"/> more bytes stay within the declared length.</summary>
    public bool CanAccept(long count) => Written + count <= payload.ByteLength;

    /// <summary>Counts <paramref name="count"/> bytes written to <see cref="Inner"/> by other means.</summary>
    public void Advance(long count)
    {
        if (!CanAccept(count))
        {
            throw new InvalidOperationException(
                $"Payload for tensor '{payload.Name}' wrote more than the {payload.ByteLength} bytes its shape {payload.Shape} of {payload.DType} needs.");
        }
        Written += count;
    }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => Written;
        set => throw new NotSupportedException();
    }

    /// <summary>Writes <paramref name="payload"/> to <paramref name="destination"/>, checking it writes exactly its declared length.</summary>
    /// <exception cref="InvalidOperationException">The payload wrote more or fewer bytes than it declared.</exception>
    public static void WriteExactly(TensorPayload payload, Stream destination)
    {
        var counter = new PayloadStream(destination, payload);
        payload.WriteTo(counter);
        if (counter.Written != payload.ByteLength)
        {
            throw new InvalidOperationException(
                $"Payload for tensor '{payload.Name}' wrote {counter.Written} bytes; its shape {payload.Shape} of {payload.DType} needs {payload.ByteLength}.");
        }
    }

    public override void Flush() => inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count)
    {
        ValidateBufferArguments(buffer, offset, count);
        Write(buffer.AsSpan(offset, count));
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (Written + buffer.Length > payload.ByteLength)
        {
            throw new InvalidOperationException(
                $"Payload for tensor '{payload.Name}' wrote more than the {payload.ByteLength} bytes its shape {payload.Shape} of {payload.DType} needs.");
        }
        inner.Write(buffer);
        Written += buffer.Length;
    }

    public override void WriteByte(byte value)
    {
        ReadOnlySpan<byte> one = [value];
        Write(one);
    }
}
