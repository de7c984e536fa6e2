using System.Buffers.Binary;
using System.Collections.ObjectModel;
using System.Text.Json;
using System.Text.Unicode;

namespace Graft.Checkpoints.Safetensors;

/// <summary>
/// A validated, memory-mapped safetensors file. Opening maps the file read-only and checks the whole header and
/// every byte range before any tensor data is touched, so a hostile file fails with a
/// <see cref="CheckpointFormatException"/> instead of a crash or a huge allocation; reading a tensor afterwards is a
/// plain copy out of the map.
/// </summary>
/// <remarks>
/// Safe to read from several threads at once; not safe to read while another thread disposes the reader.
/// The mapping reflects the file on disk: a file truncated by another process after opening cannot be defended
/// against (the operating system signals the access), which is why the file is opened with <see cref="FileShare.Read"/>.
/// </remarks>
public sealed unsafe class SafetensorsReader : ICheckpointReader
{
    /// <summary>Largest header the reader accepts, the same cap as the reference implementation.</summary>
    public const long MaxHeaderLength = 100_000_000;

    /// <summary>Deepest JSON nesting accepted; a valid header needs only three levels.</summary>
    internal const int MaxJsonDepth = 64;

    /// <summary>Largest rank accepted; far beyond any real tensor, small enough that a hostile shape stays cheap.</summary>
    internal const int MaxRank = 1024;

    /// <summary>Chunk size for <see cref="CopyTo"/>, so streaming never holds more than this much in flight.</summary>
    internal const int CopyChunkSize = 1 << 20;

    private const string MetadataKey = "__metadata__";

    private readonly TensorIndex<Entry> _index;
    private readonly FileIdentity? _identity;
    private readonly Lock _gate = new();
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _handle;
    private int _inUse;
    private bool _disposed;

    private SafetensorsReader(string path, Microsoft.Win32.SafeHandles.SafeFileHandle handle, Parsed parsed)
    {
        Path = path;
        // Every read goes through the handle (pread, or copy_file_range for CopyTo): streamed tensors pass through the
        // page cache without becoming part of this process's resident memory, and a file truncated meanwhile is an
        // error rather than a SIGBUS.
        _handle = handle;
        _identity = FileIdentity.Of(handle);
        DataOffset = parsed.DataOffset;
        _index = new TensorIndex<Entry>(path, parsed.Entries, static e => e.Info);
        Metadata = new ReadOnlyDictionary<string, string>(parsed.Metadata);
    }

    /// <inheritdoc/>
    public string Path { get; }

    /// <inheritdoc/>
    public string Format => SafetensorsFormat.Instance.Name;

    /// <inheritdoc/>
    public IReadOnlyList<TensorInfo> Tensors => _index.Tensors;

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// Absolute file offset of the data buffer (8 + header length). Tensor offsets in the header are relative to it;
    /// exposed so that callers can map or read tensor bytes themselves without another copy.
    /// </summary>
    public long DataOffset { get; }

    /// <summary>
    /// Opens and validates a safetensors file. The file is opened read-only and shared for reading only; its header is
    /// read into memory and its tensors are read with <c>pread</c> when asked for.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file breaks a rule of the format; <see cref="CheckpointFormatException.Kind"/> says which.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static SafetensorsReader Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var handle = FileIdentity.OpenInput(path);
        try
        {
            var length = RandomAccess.GetLength(handle);
            // The prefix and header are read into memory (at most MaxHeaderLength): nothing of the file is mapped, so a
            // file truncated while it is open is a read error, never a SIGBUS (FileRead).
            Span<byte> prefix = stackalloc byte[8];
            var got = length < 8 ? 0 : RandomAccess.Read(handle, prefix, 0);
            if (got < 8)
            {
                // Too short to hold the prefix (or cut below it since): refused before anything is parsed.
                Validate(path, null, length < 8 ? length : got);
            }
            var declared = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            var headerLength = declared <= MaxHeaderLength && 8 + (long)declared <= length ? (int)declared : 0;
            var image = new byte[8 + headerLength];
            prefix.CopyTo(image);
            FileRead.Exactly(handle, 8, image.AsSpan(8), path, null);
            Parsed parsed;
            fixed (byte* p = image)
            {
                // Validate sees the file's length, so a header too long for the file is refused as before.
                parsed = Validate(path, p, length);
            }
            return new SafetensorsReader(path, handle, parsed);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public bool TryGetTensor(string name, out TensorInfo info) => _index.TryGetTensor(name, out info);

    /// <summary>
    /// Absolute file offset of a tensor's first byte, for callers that read or map the file themselves (zero-copy
    /// loading). The tensor occupies <see cref="TensorInfo.ByteLength"/> bytes from there.
    /// </summary>
    /// <exception cref="ArgumentException">The tensor does not belong to this reader.</exception>
    public long GetTensorOffset(TensorInfo tensor) => DataOffset + _index.Find(tensor).Begin;

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The tensor does not belong to this reader, or the destination has the wrong length.</exception>
    public void ReadBytes(TensorInfo tensor, Span<byte> destination)
    {
        var e = _index.FindForRead(tensor, destination);
        var handle = Acquire();
        try
        {
            FileRead.Exactly(handle, DataOffset + e.Begin, destination, Path, e.Info.Name);
        }
        finally
        {
            Release();
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The tensor does not belong to this reader.</exception>
    public void CopyTo(TensorInfo tensor, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var e = _index.Find(tensor);
        var handle = Acquire();
        try
        {
            var position = DataOffset + e.Begin;
            var remaining = e.Info.ByteLength;
            var direct = FileCopy.TryCopy(handle, position, remaining, destination);
            position += direct;
            remaining -= direct;
            if (remaining == 0)
            {
                return;
            }
            FileRead.CopyRange(handle, position, remaining, destination, Path, e.Info.Name, CopyChunkSize);
        }
        finally
        {
            Release();
        }
    }

    /// <summary>Releases the file. Tensors cannot be read afterwards.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _handle?.Dispose();
            _handle = null;
        }
    }

    /// <summary>True while the file is open (not <see cref="Park"/>ed).</summary>
    internal bool IsOpen
    {
        get
        {
            lock (_gate)
            {
                return _handle is not null;
            }
        }
    }

    /// <summary>
    /// Closes the file while no read is under way, keeping the parsed header: the next read reopens it, after checking
    /// that the path still names the same file (device and inode). A sharded checkpoint of thousands of shards so holds
    /// only the shards it is reading open, not one descriptor per shard. Returns false when a read is under way.
    /// </summary>
    internal bool Park()
    {
        lock (_gate)
        {
            if (_inUse > 0 || _handle is null)
            {
                return false;
            }
            _handle.Dispose();
            _handle = null;
            return true;
        }
    }

    private Microsoft.Win32.SafeHandles.SafeFileHandle Acquire()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_handle is null)
            {
                var reopened = FileIdentity.OpenInput(Path);
                if (_identity is { } was && (FileIdentity.Of(reopened) is not { } now || !now.SameFileAs(was)))
                {
                    reopened.Dispose();
                    throw new CheckpointFormatException(CheckpointErrorKind.Inconsistent, Path, null,
                        "the file was replaced since its header was read; open the checkpoint again.");
                }
                _handle = reopened;
            }
            _inUse++;
            return _handle;
        }
    }

    private void Release()
    {
        lock (_gate)
        {
            _inUse--;
        }
    }

    /// <summary>
    /// The one validation routine. Every rule is checked in this order, with checked arithmetic, before any tensor byte
    /// is read: prefix, header length, UTF-8, JSON syntax, structure (entry by entry: name, fields, dtype, shape, size,
    /// offsets, bounds, length), then the layout of all ranges together (overlaps, gaps, trailing bytes).
    /// </summary>
    internal static Parsed Validate(string path, byte* file, long fileLength)
    {
        if (fileLength < 8)
        {
            throw Fail(CheckpointErrorKind.TooShort, path, null, $"file is {fileLength} bytes; a safetensors file starts with an 8-byte header length.");
        }
        var declared = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(file, 8));
        if (declared > MaxHeaderLength)
        {
            throw Fail(CheckpointErrorKind.HeaderTooLarge, path, null, $"declared header length {declared} exceeds the limit of {MaxHeaderLength} bytes.");
        }
        var headerLength = (long)declared;
        if (checked(8 + headerLength) > fileLength)
        {
            throw Fail(CheckpointErrorKind.HeaderTooLarge, path, null, $"declared header length {headerLength} reaches past the end of the {fileLength}-byte file.");
        }
        var header = new ReadOnlySpan<byte>(file + 8, (int)headerLength);
        if (!Utf8.IsValid(header))
        {
            throw Fail(CheckpointErrorKind.HeaderNotUtf8, path, null, "header is not valid UTF-8.");
        }

        CheckSyntax(path, header);

        var dataOffset = 8 + headerLength;
        var bufferLength = fileLength - dataOffset;
        var entries = new List<Entry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var shapes = new Dictionary<Shape, Shape>();

        var r = new Utf8JsonReader(header, Options);
        r.Read();
        if (r.TokenType != JsonTokenType.StartObject)
        {
            throw Fail(CheckpointErrorKind.InvalidHeader, path, null, $"header must be a JSON object, found {Describe(r.TokenType)}.");
        }
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var key = r.GetString()!;
            if (key.Length == 0)
            {
                // The format does not forbid it, but no state dict has one and Graft cannot write or address it (found by fuzzing).
                throw Fail(CheckpointErrorKind.InvalidHeader, path, null, "a tensor has an empty name.");
            }
            if (!seen.Add(key))
            {
                throw key == MetadataKey
                    ? Fail(CheckpointErrorKind.DuplicateName, path, null, $"'{MetadataKey}' appears twice in the header.")
                    : Fail(CheckpointErrorKind.DuplicateName, path, key, "the name appears twice in the header.");
            }
            r.Read();
            if (key == MetadataKey)
            {
                ReadMetadata(path, ref r, metadata);
            }
            else
            {
                entries.Add(ReadEntry(path, key, ref r, bufferLength, shapes));
            }
        }

        CheckLayout(path, entries, bufferLength);
        return new Parsed(dataOffset, entries, metadata);
    }

    private static readonly JsonReaderOptions Options = new()
    {
        MaxDepth = MaxJsonDepth,
        CommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
    };

    private static void CheckSyntax(string path, ReadOnlySpan<byte> header)
    {
        if (header.StartsWith("\uFEFF"u8))
        {
            throw Fail(CheckpointErrorKind.HeaderNotJson, path, null, "header starts with a byte-order mark, which JSON does not allow.");
        }
        try
        {
            var r = new Utf8JsonReader(header, Options);
            while (r.Read())
            {
                // Valid UTF-8 bytes can still escape a lone surrogate (\ud800), which no .NET string can hold; decode
                // every escaped string here so that the structural pass never meets one (found by fuzzing).
                if (r.TokenType is JsonTokenType.String or JsonTokenType.PropertyName && r.ValueIsEscaped)
                {
                    _ = r.GetString();
                }
            }
        }
        catch (JsonException ex)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.HeaderNotJson, path, null,
                $"header is not valid JSON (nesting is capped at {MaxJsonDepth} levels): {ex.Message}", ex);
        }
        catch (InvalidOperationException ex)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.HeaderNotJson, path, null,
                $"header has a string that is not valid Unicode (an escaped lone surrogate): {ex.Message}", ex);
        }
    }

    private static void ReadMetadata(string path, ref Utf8JsonReader r, Dictionary<string, string> metadata)
    {
        if (r.TokenType != JsonTokenType.StartObject)
        {
            throw Fail(CheckpointErrorKind.InvalidMetadata, path, null, $"'{MetadataKey}' must be an object of strings, found {Describe(r.TokenType)}.");
        }
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var key = r.GetString()!;
            r.Read();
            if (r.TokenType != JsonTokenType.String)
            {
                throw Fail(CheckpointErrorKind.InvalidMetadata, path, null, $"metadata value for '{key}' must be a string, found {Describe(r.TokenType)}.");
            }
            if (!metadata.TryAdd(key, r.GetString()!))
            {
                throw Fail(CheckpointErrorKind.InvalidMetadata, path, null, $"metadata key '{key}' appears twice.");
            }
        }
    }

    /// <summary>
    /// Reads one tensor's entry. <paramref name="shapes"/> holds the shapes read so far: tensors of one shape share one
    /// <see cref="Shape"/> (a model repeats a handful of shapes over thousands of tensors, and a shape object costs more
    /// than the header's text of it).
    /// </summary>
    private static Entry ReadEntry(string path, string name, ref Utf8JsonReader r, long bufferLength, Dictionary<Shape, Shape> shapes)
    {
        if (r.TokenType != JsonTokenType.StartObject)
        {
            throw Fail(CheckpointErrorKind.InvalidHeader, path, name, $"entry must be an object with dtype, shape and data_offsets, found {Describe(r.TokenType)}.");
        }
        string? dtypeName = null;
        long[]? dims = null;
        long[]? offsets = null;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            // Compared as UTF-8, not made into strings: three fields of every tensor of a header of any size.
            var field = r.ValueTextEquals("dtype"u8) ? "dtype" : r.ValueTextEquals("shape"u8) ? "shape"
                : r.ValueTextEquals("data_offsets"u8) ? "data_offsets" : r.GetString()!;
            r.Read();
            switch (field)
            {
                case "dtype":
                    if (dtypeName is not null)
                    {
                        throw Fail(CheckpointErrorKind.InvalidHeader, path, name, "field 'dtype' appears twice.");
                    }
                    if (r.TokenType != JsonTokenType.String)
                    {
                        throw Fail(CheckpointErrorKind.InvalidHeader, path, name, $"'dtype' must be a string, found {Describe(r.TokenType)}.");
                    }
                    dtypeName = DTypeName(ref r);
                    break;
                case "shape":
                    if (dims is not null)
                    {
                        throw Fail(CheckpointErrorKind.InvalidHeader, path, name, "field 'shape' appears twice.");
                    }
                    dims = ReadShape(path, name, ref r);
                    break;
                case "data_offsets":
                    if (offsets is not null)
                    {
                        throw Fail(CheckpointErrorKind.InvalidHeader, path, name, "field 'data_offsets' appears twice.");
                    }
                    offsets = ReadOffsets(path, name, ref r);
                    break;
                default:
                    throw Fail(CheckpointErrorKind.InvalidHeader, path, name, $"unexpected field '{field}' (expected dtype, shape, data_offsets).");
            }
        }
        if (dtypeName is null || dims is null || offsets is null)
        {
            var missing = dtypeName is null ? "dtype" : dims is null ? "shape" : "data_offsets";
            throw Fail(CheckpointErrorKind.InvalidHeader, path, name, $"field '{missing}' is missing.");
        }
        if (!DTypes.TryParseSafetensors(dtypeName, out var dtype))
        {
            throw Fail(CheckpointErrorKind.UnknownDType, path, name, $"unknown dtype '{dtypeName}'.");
        }

        long byteLength;
        try
        {
            long count = 1;
            foreach (var d in dims)
            {
                count = checked(count * d);
            }
            byteLength = checked(count * dtype.ElementSize());
        }
        catch (OverflowException)
        {
            throw Fail(CheckpointErrorKind.SizeOverflow, path, name,
                $"shape {new Shape(dims)} of {dtype.SafetensorsName()} is larger than 2^63 bytes.");
        }

        var (begin, end) = (offsets[0], offsets[1]);
        if (end > bufferLength)
        {
            throw Fail(CheckpointErrorKind.OutOfBounds, path, name,
                $"data_offsets [{begin}, {end}] reach past the end of the {bufferLength}-byte data buffer.");
        }
        if (end - begin != byteLength)
        {
            throw Fail(CheckpointErrorKind.LengthMismatch, path, name,
                $"data_offsets [{begin}, {end}] span {end - begin} bytes, but shape {new Shape(dims)} of {dtype.SafetensorsName()} needs {byteLength}.");
        }
        var shape = new Shape(dims);
        if (!shapes.TryAdd(shape, shape))
        {
            shape = shapes[shape];
        }
        return new Entry(new TensorInfo(name, dtype, shape, byteLength), begin);
    }

    /// <summary>The dtype's name, without allocating when it is one of the names safetensors defines.</summary>
    private static string DTypeName(ref Utf8JsonReader r)
    {
        foreach (var (utf8, known) in KnownDTypeNames)
        {
            if (r.ValueTextEquals(utf8))
            {
                return known;
            }
        }
        return r.GetString()!;
    }

    private static readonly (byte[] Utf8, string Name)[] KnownDTypeNames = Enum.GetValues<DType>()
        .Select(d => d.SafetensorsName()).Distinct().Select(n => (System.Text.Encoding.UTF8.GetBytes(n), n)).ToArray();

    private static long[] ReadShape(string path, string name, ref Utf8JsonReader r)
    {
        if (r.TokenType != JsonTokenType.StartArray)
        {
            throw Fail(CheckpointErrorKind.InvalidShape, path, name, $"'shape' must be an array of non-negative integers, found {Describe(r.TokenType)}.");
        }
        var dims = new List<long>();
        while (r.Read() && r.TokenType != JsonTokenType.EndArray)
        {
            if (r.TokenType != JsonTokenType.Number || !r.TryGetInt64(out var d) || d < 0)
            {
                throw Fail(CheckpointErrorKind.InvalidShape, path, name,
                    $"dimension {dims.Count} is {Token(ref r)}; dimensions must be non-negative integers below 2^63.");
            }
            if (dims.Count == MaxRank)
            {
                throw Fail(CheckpointErrorKind.InvalidShape, path, name, $"rank exceeds {MaxRank}.");
            }
            dims.Add(d);
        }
        return [.. dims];
    }

    private static long[] ReadOffsets(string path, string name, ref Utf8JsonReader r)
    {
        if (r.TokenType != JsonTokenType.StartArray)
        {
            throw Fail(CheckpointErrorKind.InvalidOffsets, path, name, $"'data_offsets' must be an array [begin, end], found {Describe(r.TokenType)}.");
        }
        var values = new long[2];
        var count = 0;
        while (r.Read() && r.TokenType != JsonTokenType.EndArray)
        {
            if (count == 2)
            {
                throw Fail(CheckpointErrorKind.InvalidOffsets, path, name, "'data_offsets' has more than two elements.");
            }
            if (r.TokenType != JsonTokenType.Number || !r.TryGetInt64(out var v) || v < 0)
            {
                throw Fail(CheckpointErrorKind.InvalidOffsets, path, name,
                    $"offset {count} is {Token(ref r)}; offsets must be non-negative integers below 2^63.");
            }
            values[count++] = v;
        }
        if (count != 2)
        {
            throw Fail(CheckpointErrorKind.InvalidOffsets, path, name, $"'data_offsets' has {count} elements; it must be [begin, end].");
        }
        if (values[0] > values[1])
        {
            throw Fail(CheckpointErrorKind.InvalidOffsets, path, name, $"data_offsets [{values[0]}, {values[1]}] end before they begin.");
        }
        return values;
    }

    private static void CheckLayout(string path, List<Entry> entries, long bufferLength)
    {
        var sorted = entries.ToArray();
        Array.Sort(sorted, static (a, b) =>
        {
            var c = a.Begin.CompareTo(b.Begin);
            return c != 0 ? c : a.End.CompareTo(b.End);
        });
        long expected = 0;
        TensorInfo? previous = null;
        long previousBegin = 0;
        foreach (var e in sorted)
        {
            if (e.Begin < expected)
            {
                throw Fail(CheckpointErrorKind.OverlappingData, path, e.Info.Name,
                    $"bytes [{e.Begin}, {e.End}] overlap tensor '{previous!.Name}' at [{previousBegin}, {previousBegin + previous.ByteLength}].");
            }
            if (e.Begin > expected)
            {
                var after = previous is null ? "the start of the data buffer" : $"tensor '{previous.Name}'";
                throw Fail(CheckpointErrorKind.GapInData, path, e.Info.Name,
                    $"{e.Begin - expected} unused bytes between {after} (ending at {expected}) and this tensor (starting at {e.Begin}).");
            }
            expected = e.End;
            previous = e.Info;
            previousBegin = e.Begin;
        }
        if (expected != bufferLength)
        {
            throw Fail(CheckpointErrorKind.GapInData, path, null,
                $"{bufferLength - expected} trailing bytes after the last tensor (data ends at {expected}, buffer is {bufferLength} bytes).");
        }
    }

    private static string Token(ref Utf8JsonReader r)
    {
        if (r.TokenType != JsonTokenType.Number)
        {
            return Describe(r.TokenType);
        }
        // The header is one contiguous span, so the value is never a sequence; cap what a hostile number adds to the message.
        var text = r.ValueSpan;
        return text.Length <= 40 ? System.Text.Encoding.UTF8.GetString(text) : System.Text.Encoding.UTF8.GetString(text[..40]) + "…";
    }

    private static string Describe(JsonTokenType t) => t switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => t.ToString(),
    };

    private static CheckpointFormatException Fail(CheckpointErrorKind kind, string path, string? tensor, string detail) =>
        new(kind, path, tensor, detail);

    /// <summary>
    /// A tensor's description and where its bytes start, relative to the data buffer. A value, not an object: the index
    /// holds one per tensor, and a header can declare hundreds of thousands.
    /// </summary>
    internal readonly record struct Entry(TensorInfo Info, long Begin)
    {
        public long End => Begin + Info.ByteLength;
    }

    /// <summary>The outcome of validation: everything the reader needs, nothing that touched tensor data.</summary>
    internal sealed record Parsed(long DataOffset, List<Entry> Entries, Dictionary<string, string> Metadata);
}
