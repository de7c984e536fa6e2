using System.Collections.ObjectModel;
using System.Text;
using System.Text.Unicode;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints.TorchSharpFormat;

/// <summary>
/// Reads files written by TorchSharp's <c>Module.save</c>. The format has no magic, version or checksum, so opening
/// walks every entry header once (skipping the tensor bytes), bounding each count and length by the bytes left,
/// and keeps only each tensor's offset: a hostile file fails with a <see cref="CheckpointFormatException"/> before any
/// large allocation, and tensor bytes are read on demand.
/// </summary>
/// <remarks>
/// Entry names are the format's only text; they are checked as strict UTF-8 (TorchSharp's <c>BinaryReader</c> would
/// silently replace bad bytes, and two different byte strings could then load under one name), and a bad one is
/// reported as <see cref="CheckpointErrorKind.HeaderNotUtf8"/>. Safe to read from several threads at once.
/// </remarks>
public sealed class TorchSharpReader : ICheckpointReader
{
    /// <summary>Longest entry name accepted; real names are tens of bytes, and a cap keeps a hostile length cheap.</summary>
    public const int MaxNameBytes = 64 * 1024;

    /// <summary>Largest rank accepted (libtorch itself stops at 64 dimensions in practice).</summary>
    internal const int MaxRank = 1024;

    /// <summary>Longest LEB128 varint: ten 7-bit groups cover 64 bits.</summary>
    internal const int MaxVarintBytes = 10;

    private const int CopyChunkSize = 1 << 20;

    private readonly SafeFileHandle _file;
    private readonly TensorIndex<(TensorInfo Info, long Offset)> _index;
    private bool _disposed;

    private TorchSharpReader(string path, SafeFileHandle file, List<(TensorInfo Info, long Offset)> entries)
    {
        Path = path;
        _file = file;
        _index = new TensorIndex<(TensorInfo Info, long Offset)>(path, entries, static e => e.Info);
    }

    /// <inheritdoc/>
    public string Path { get; }

    /// <inheritdoc/>
    public string Format => TorchSharpCheckpointFormat.FormatName;

    /// <inheritdoc/>
    public IReadOnlyList<TensorInfo> Tensors => _index.Tensors;

    /// <summary>Always empty: the format stores tensors only.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; } = ReadOnlyDictionary<string, string>.Empty;

    /// <summary>Opens and validates a <c>Module.save</c> file; the file stays open, shared for reading only.</summary>
    /// <exception cref="CheckpointFormatException">The file breaks a rule of the format; <see cref="CheckpointFormatException.Kind"/> says which.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static TorchSharpReader Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var file = FileIdentity.OpenInput(path);
        try
        {
            var entries = Index(path, file);
            return new TorchSharpReader(path, file, entries);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Absolute file offset of a tensor's first byte, for callers that read or map the file themselves.</summary>
    /// <exception cref="ArgumentException">The tensor does not belong to this reader.</exception>
    public long GetTensorOffset(TensorInfo tensor) => _index.Find(tensor).Offset;

    /// <inheritdoc/>
    public bool TryGetTensor(string name, out TensorInfo info) => _index.TryGetTensor(name, out info);

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The tensor does not belong to this reader, or the destination has the wrong length.</exception>
    public void ReadBytes(TensorInfo tensor, Span<byte> destination)
    {
        var (info, offset) = _index.FindForRead(tensor, destination);
        ReadExactly(offset, destination, info.Name);
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The tensor does not belong to this reader.</exception>
    public void CopyTo(TensorInfo tensor, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var (info, offset) = _index.Find(tensor);
        ObjectDisposedException.ThrowIf(_disposed, this);
        FileRead.CopyRange(_file, offset, info.ByteLength, destination, Path, info.Name, CopyChunkSize);
    }

    /// <summary>Closes the file. Tensors cannot be read afterwards.</summary>
    public void Dispose()
    {
        _disposed = true;
        _file.Dispose();
    }

    private void ReadExactly(long offset, Span<byte> destination, string tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // Validated at open: only a file truncated since then ends early.
        FileRead.Exactly(_file, offset, destination, Path, tensor);
    }

    /// <summary>
    /// The one validation routine: entry count, then per entry name, type code, rank, dimensions, size and data range,
    /// each bounded by the bytes left; finally no byte may follow the last tensor.
    /// </summary>
    private static List<(TensorInfo Info, long Offset)> Index(string path, SafeFileHandle file)
    {
        var length = RandomAccess.GetLength(file);
        if (length == 0)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.TooShort, path, null, "file is empty; a Module.save file starts with an entry count.");
        }
        var c = new Cursor(path, file, length);
        var count = c.Varint(null, "entry count");
        // An entry takes at least three bytes (name length, type code, rank), so a larger count cannot be honest.
        if (count > (length - c.Position) / 3)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null,
                $"entry count {count} is larger than the {length - c.Position} bytes left could hold.");
        }
        var entries = new List<(TensorInfo, long)>((int)count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < count; i++)
        {
            var name = c.Name(i);
            if (!seen.Add(name))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.DuplicateName, path, name, "the name appears twice in the file.");
            }
            var code = c.Varint(name, "scalar type");
            if (!ScalarTypes.TryToDType(code, out var dtype))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.UnknownDType, path, name,
                    $"scalar type code {code} ({ScalarTypes.Describe(code)}) is not one Graft reads.");
            }
            var rank = c.Varint(name, "rank");
            if (rank > MaxRank || rank > c.Remaining)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.InvalidShape, path, name,
                    $"rank {rank} is over the limit of {MaxRank} or larger than the {c.Remaining} bytes left.");
            }
            var dims = new long[rank];
            for (var d = 0; d < rank; d++)
            {
                dims[d] = c.Varint(name, $"dimension {d}");
            }
            var info = TensorInfo.Declared(path, name, dtype, new Shape(dims));
            if (info.ByteLength > c.Remaining)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, name,
                    $"shape {info.Shape} of {dtype} needs {info.ByteLength} bytes at offset {c.Position}; only {c.Remaining} are left in the file.");
            }
            entries.Add((info, c.Position));
            c.Skip(info.ByteLength);
        }
        if (c.Remaining != 0)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.GapInData, path, null,
                $"{c.Remaining} trailing bytes after the last tensor (entries end at {c.Position}, the file is {length} bytes).");
        }
        return entries;
    }

    /// <summary>A forward-only, buffered position in the file for walking entry headers.</summary>
    private sealed class Cursor(string path, SafeFileHandle file, long length)
    {
        private static readonly UTF8Encoding StrictUtf8 = new(false, true);
        private readonly byte[] _buffer = new byte[64 * 1024];
        private long _bufferStart;
        private int _bufferLength;

        public long Position { get; private set; }

        public long Remaining => length - Position;

        public void Skip(long n) => Position += n;

        public long Varint(string? tensor, string what)
        {
            ulong value = 0;
            for (var i = 0; i < MaxVarintBytes; i++)
            {
                var b = Byte(tensor, what);
                if (i == 9 && (b & 0x7F) != 0)
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, tensor,
                        $"{what} at offset {Position - 10} does not fit in a signed 64-bit integer.");
                }
                value |= (ulong)(b & 0x7F) << (7 * i);
                if ((b & 0x80) == 0)
                {
                    if (value > long.MaxValue)
                    {
                        throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, tensor,
                            $"{what} {value} does not fit in a signed 64-bit integer.");
                    }
                    return (long)value;
                }
            }
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, tensor,
                $"{what} at offset {Position - MaxVarintBytes} is a varint longer than {MaxVarintBytes} bytes.");
        }

        public string Name(long index)
        {
            // .NET's BinaryWriter prefixes strings with a 7-bit encoded Int32 byte count (at most 5 bytes).
            var start = Position;
            var n = Varint(null, $"name length of entry {index}");
            if (Position - start > 5 || n > int.MaxValue)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null,
                    $"name length of entry {index} at offset {start} is not a valid 7-bit encoded Int32.");
            }
            if (n > MaxNameBytes || n > Remaining)
            {
                throw new CheckpointFormatException(n > Remaining ? CheckpointErrorKind.OutOfBounds : CheckpointErrorKind.Corrupt, path, null,
                    $"name length {n} of entry {index} at offset {start} is over the {MaxNameBytes}-byte limit or beyond the {Remaining} bytes left.");
            }
            var bytes = new byte[n];
            for (var i = 0; i < bytes.Length; i++)
            {
                bytes[i] = Byte(null, "name");
            }
            if (!Utf8.IsValid(bytes))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.HeaderNotUtf8, path, null,
                    $"name of entry {index} at offset {start} is not valid UTF-8.");
            }
            var name = StrictUtf8.GetString(bytes);
            if (name.Length == 0)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.InvalidHeader, path, null, $"entry {index} at offset {start} has an empty name.");
            }
            return name;
        }

        private byte Byte(string? tensor, string what)
        {
            if (Position >= length)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, tensor,
                    $"the file ends (at {length} bytes) in the middle of the {what}.");
            }
            if (Position < _bufferStart || Position >= _bufferStart + _bufferLength)
            {
                _bufferStart = Position;
                _bufferLength = RandomAccess.Read(file, _buffer, Position);
                if (_bufferLength == 0)
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, tensor, $"the file ended early while reading the {what}.");
                }
            }
            return _buffer[Position++ - _bufferStart];
        }
    }
}
