using Graft.Checkpoints;

namespace Graft.Fuzz;

/// <summary>What one input did to a reader.</summary>
internal enum OutcomeKind
{
    /// <summary>Opened, and every tensor read.</summary>
    Accepted,

    /// <summary>Refused with a <see cref="CheckpointFormatException"/>: the only acceptable failure.</summary>
    Rejected,

    /// <summary>Any other exception, a broken invariant, or too much memory: a bug.</summary>
    Crash,

    /// <summary>Did not finish within the per-input time limit: a bug.</summary>
    Hang,
}

/// <summary>The outcome of one input, with what the reader allocated.</summary>
internal sealed record Outcome(OutcomeKind Kind, string Detail, long AllocatedBytes)
{
    public bool IsBug => Kind is OutcomeKind.Crash or OutcomeKind.Hang;
}

/// <summary>
/// The one fuzz target, shared by AFL++ (through SharpFuzz), the smoke runner and the regression tests: open a file with
/// one format's reader, read every tensor's bytes by both <see cref="ICheckpointReader.ReadBytes"/> and
/// <see cref="ICheckpointReader.CopyTo"/>, and check that the two agree and that the reader's own allocations stay under
/// <see cref="MemoryBound"/>. Success and <see cref="CheckpointFormatException"/> are the only acceptable results.
/// </summary>
internal static class FuzzTarget
{
    /// <summary>Fixed allowance every reader gets, whatever the file size (dictionaries, the pickle, small buffers).</summary>
    public const long MemoryAllowance = 64L << 20;

    /// <summary>
    /// Most bytes a reader may allocate on the calling thread to open a file and read every tensor: 64 MiB plus four
    /// times the file size. Tensor destination buffers belong to the caller and do not count. Tensors whose logical size
    /// exceeds the bound (only a strided or stride-0 PyTorch view can be larger than its file) are streamed through
    /// <see cref="ICheckpointReader.CopyTo"/> only.
    /// </summary>
    public static long MemoryBound(long fileLength) => MemoryAllowance + 4 * fileLength;

    /// <summary>Most logical bytes streamed per input, so that a legal but enormous expanded view is not a hang.</summary>
    public const long StreamCap = 256L << 20;

    /// <summary>The format's first file extension (readers and sniffers may care), or none.</summary>
    public static string Extension(ICheckpointFormat format) => format.Extensions.Count > 0 ? format.Extensions[0] : "";

    /// <summary>Runs the target on the calling thread. Never throws: every exception becomes an outcome.</summary>
    public static Outcome Run(ICheckpointFormat format, string path)
    {
        var fileLength = new FileInfo(path).Length;
        var start = GC.GetAllocatedBytesForCurrentThread();
        long harness = 0;
        try
        {
            harness = ReadEverything(format, path, fileLength);
            var allocated = GC.GetAllocatedBytesForCurrentThread() - start - harness;
            if (allocated > MemoryBound(fileLength))
            {
                return new Outcome(OutcomeKind.Crash,
                    $"reader allocated {allocated:N0} bytes for a {fileLength:N0}-byte file (bound {MemoryBound(fileLength):N0})", allocated);
            }
            return new Outcome(OutcomeKind.Accepted, "", allocated);
        }
        catch (CheckpointFormatException e)
        {
            var allocated = GC.GetAllocatedBytesForCurrentThread() - start;
            if (allocated > MemoryBound(fileLength) + (64L << 20))
            {
                return new Outcome(OutcomeKind.Crash,
                    $"reader allocated {allocated:N0} bytes before refusing a {fileLength:N0}-byte file (bound {MemoryBound(fileLength):N0}): {e.Kind}: {e.Detail}", allocated);
            }
            return new Outcome(OutcomeKind.Rejected, $"{e.Kind}: {e.Detail}", allocated);
        }
        catch (InvariantException e)
        {
            return new Outcome(OutcomeKind.Crash, e.Message, GC.GetAllocatedBytesForCurrentThread() - start);
        }
        catch (Exception e)
        {
            return new Outcome(OutcomeKind.Crash, $"{e.GetType().FullName}: {e.Message}\n{e.StackTrace}", GC.GetAllocatedBytesForCurrentThread() - start);
        }
    }

    /// <summary>
    /// Opens and reads; lets every exception escape (AFL++ sees an unhandled exception as a crash), except
    /// <see cref="CheckpointFormatException"/>, which it swallows. Returns the bytes the harness itself allocated.
    /// </summary>
    public static long RunForAfl(ICheckpointFormat format, string path)
    {
        var outcome = Run(format, path);
        if (outcome.IsBug)
        {
            throw new InvalidOperationException($"{format.Name}: {outcome.Kind}: {outcome.Detail}");
        }
        return outcome.AllocatedBytes;
    }

    // Opens with the format's own reader (no sniffing: each reader gets its own inputs), reads every tensor twice.
    private static long ReadEverything(ICheckpointFormat format, string path, long fileLength)
    {
        long harness = 0;
        using var reader = format.Open(path);
        var bound = MemoryBound(fileLength);
        long streamed = 0;
        byte[] buffer = [];
        var copy = new CompareStream();
        foreach (var t in reader.Tensors)
        {
            if (t is null || string.IsNullOrEmpty(t.Name))
            {
                throw new InvariantException("a tensor with no name");
            }
            long count;
            try
            {
                count = t.ElementCount;
            }
            catch (OverflowException)
            {
                throw new InvariantException($"tensor '{t.Name}': shape {t.Shape} overflows but the reader accepted it");
            }
            if (t.ByteLength != count * t.DType.ElementSize())
            {
                throw new InvariantException($"tensor '{t.Name}': ByteLength {t.ByteLength} is not {count} × {t.DType.ElementSize()}");
            }
            if (!reader.TryGetTensor(t.Name, out var again) || again != t)
            {
                throw new InvariantException($"tensor '{t.Name}': TryGetTensor does not find it");
            }
            if (t.ByteLength <= bound)
            {
                if (buffer.Length < t.ByteLength)
                {
                    buffer = new byte[t.ByteLength];
                    harness += t.ByteLength + 32;
                }
                var span = buffer.AsSpan(0, (int)t.ByteLength);
                reader.ReadBytes(t, span);
                copy.Reset(buffer, span.Length);
                reader.CopyTo(t, copy);
                if (copy.Position != t.ByteLength)
                {
                    throw new InvariantException($"tensor '{t.Name}': CopyTo wrote {copy.Position} bytes, ReadBytes {t.ByteLength}");
                }
            }
            else if (streamed + t.ByteLength <= StreamCap)
            {
                copy.Reset([], -1);
                reader.CopyTo(t, copy);
                if (copy.Position != t.ByteLength)
                {
                    throw new InvariantException($"tensor '{t.Name}': CopyTo wrote {copy.Position} of {t.ByteLength} bytes");
                }
                streamed += t.ByteLength;
            }
        }
        _ = reader.Metadata.Count;
        return harness;
    }

    /// <summary>A broken promise of the reader API that is not an exception of its own.</summary>
    private sealed class InvariantException(string message) : Exception(message);

    /// <summary>A write-only stream that counts bytes and, when given the expected bytes, checks them.</summary>
    private sealed class CompareStream : Stream
    {
        private byte[] _expected = [];
        private int _expectedLength = -1;
        private long _position;

        /// <summary>Starts a tensor; <paramref name="length"/> = -1 only counts.</summary>
        public void Reset(byte[] expected, int length)
        {
            _expected = expected;
            _expectedLength = length;
            _position = 0;
        }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => _position;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_expectedLength >= 0)
            {
                if (_position + buffer.Length > _expectedLength)
                {
                    throw new InvariantException($"CopyTo wrote more than the {_expectedLength} bytes ReadBytes gave");
                }
                if (!buffer.SequenceEqual(_expected.AsSpan((int)_position, buffer.Length)))
                {
                    throw new InvariantException($"CopyTo and ReadBytes disagree within bytes [{_position}, {_position + buffer.Length})");
                }
            }
            _position += buffer.Length;
        }
    }
}
