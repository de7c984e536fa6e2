using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints.PyTorch;

/// <summary>
/// Bytes the unpickler reads: an in-memory record (zip <c>data.pkl</c>) or a window of an open file (the legacy
/// format, whose pickles sit in front of the storage bytes). Knows how many bytes are left, so every length
/// in a pickle can be checked against what is really there before anything is allocated.
/// </summary>
internal sealed class PickleSource
{
    private readonly byte[]? _memory;
    private readonly SafeFileHandle? _file;
    private readonly long _end;
    private readonly byte[] _buffer = [];
    private long _bufferStart;
    private int _bufferLength;

    public PickleSource(byte[] memory)
    {
        _memory = memory;
        _end = memory.Length;
    }

    public PickleSource(SafeFileHandle file, long start, long end)
    {
        _file = file;
        Position = start;
        _end = end;
        _buffer = new byte[64 * 1024];
        _bufferStart = start;
    }

    /// <summary>Absolute position of the next byte.</summary>
    public long Position { get; private set; }

    public long Remaining => _end - Position;

    /// <summary>Moves past <paramref name="count"/> bytes without reading them; false (nothing consumed) when fewer are left.</summary>
    public bool TrySkip(long count)
    {
        if (count < 0 || count > Remaining)
        {
            return false;
        }
        Position += count;
        return true;
    }

    /// <summary>Reads one byte, or returns -1 at the end.</summary>
    public int ReadByte()
    {
        if (Position >= _end)
        {
            return -1;
        }
        int b;
        if (_memory is not null)
        {
            b = _memory[Position];
        }
        else
        {
            if (Position < _bufferStart || Position >= _bufferStart + _bufferLength)
            {
                Fill();
            }
            b = _buffer[Position - _bufferStart];
        }
        Position++;
        return b;
    }

    /// <summary>Fills <paramref name="destination"/> completely; false (nothing consumed) when fewer bytes are left.</summary>
    public bool TryRead(Span<byte> destination)
    {
        if (destination.Length > Remaining)
        {
            return false;
        }
        if (_memory is not null)
        {
            _memory.AsSpan((int)Position, destination.Length).CopyTo(destination);
            Position += destination.Length;
            return true;
        }
        var done = 0;
        while (done < destination.Length)
        {
            if (Position < _bufferStart || Position >= _bufferStart + _bufferLength)
            {
                Fill();
            }
            var available = (int)(_bufferStart + _bufferLength - Position);
            var n = Math.Min(available, destination.Length - done);
            _buffer.AsSpan((int)(Position - _bufferStart), n).CopyTo(destination[done..]);
            done += n;
            Position += n;
        }
        return true;
    }

    private void Fill()
    {
        var want = (int)Math.Min(_buffer.Length, _end - Position);
        var got = 0;
        while (got < want)
        {
            var n = RandomAccess.Read(_file!, _buffer.AsSpan(got, want - got), Position + got);
            if (n == 0)
            {
                break;
            }
            got += n;
        }
        if (got < want)
        {
            throw new EndOfStreamException("The file became shorter while it was being read.");
        }
        _bufferStart = Position;
        _bufferLength = got;
    }
}
