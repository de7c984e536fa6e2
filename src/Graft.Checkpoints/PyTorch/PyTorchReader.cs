using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints.PyTorch;

/// <summary>
/// Reads PyTorch <c>.pt</c>/<c>.pth</c> checkpoints (zip and legacy layouts) without running any of the pickled code:
/// the pickle is interpreted by a restricted unpickler, every storage is checked against the bytes really in the
/// file, and every tensor view is checked to stay inside its storage, all before any tensor data is read.
/// </summary>
/// <remarks>
/// A checkpoint may hold several dictionaries of tensors (a training checkpoint has the model's, the optimizer's
/// state, perhaps an EMA copy). <see cref="TensorDictionaries"/> lists them; one is selected (the caller's choice or
/// an obvious default, explained by <see cref="SelectionReason"/>) and becomes <see cref="Tensors"/>.
/// Tensor bytes are copied out of a read-only memory mapping. As with <see cref="Safetensors.SafetensorsReader"/>, a
/// file truncated by another process after opening cannot be defended against (the operating system signals the
/// access), which is why the file is opened with <see cref="FileShare.Read"/>.
/// </remarks>
public sealed unsafe partial class PyTorchReader : ICheckpointReader
{
    /// <summary>Largest <c>data.pkl</c> read into memory; real ones are kilobytes to a few megabytes.</summary>
    public const int MaxPickleBytes = 128 << 20;

    /// <summary>How deep containers may nest before the file is treated as hostile.</summary>
    public const int MaxNesting = 64;

    private const int MaxMetadataEntries = 4096;
    private const int PreloadSpanLimit = 256 << 20;
    private const int WindowBytes = 16 << 20;
    private static readonly BigInteger LegacyMagic = BigInteger.Parse("1950a86a20f9469cfc6c", NumberStyles.HexNumber);

    private readonly SafeFileHandle _file;
    private readonly Dictionary<string, long> _storageOffsets;
    private readonly TensorIndex<TensorEntry> _index;
    private bool _disposed;

    private PyTorchReader(string path, SafeFileHandle file, PyTorchContainer container, Dictionary<string, long> storageOffsets,
        List<PyTorchTensorDictionary> dictionaries, string selected, string reason, List<TensorEntry> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        _file = file;
        Container = container;
        _storageOffsets = storageOffsets;
        TensorDictionaries = dictionaries;
        SelectedKeyPath = selected;
        SelectionReason = reason;
        _index = new TensorIndex<TensorEntry>(path, tensors, static t => t.Info);
        Metadata = metadata;
        CommonKeyPrefix = FindCommonPrefix(Tensors);
        (StoredByteLength, SharedStorageCount, TensorsOnSharedStorages) = Sharing(tensors);
    }

    /// <summary>
    /// The bytes the file stores for the selected tensors: each storage they view counted once. Less than the sum of
    /// the tensors' lengths when tensors share a storage (tied weights, views of one buffer); a conversion writes every
    /// tensor in full, so what it writes is the sum, not this.
    /// </summary>
    public long StoredByteLength { get; }

    /// <summary>How many storages more than one selected tensor views (0 when no tensors share one).</summary>
    public int SharedStorageCount { get; }

    /// <summary>How many selected tensors view a storage that another selected tensor views too.</summary>
    public int TensorsOnSharedStorages { get; }

    private static (long Stored, int Shared, int Tensors) Sharing(List<TensorEntry> tensors)
    {
        var views = new Dictionary<StorageRef, int>(ReferenceEqualityComparer.Instance);
        foreach (var t in tensors)
        {
            views[t.Storage] = views.GetValueOrDefault(t.Storage) + 1;
        }
        long stored = 0;
        int shared = 0, onShared = 0;
        foreach (var (storage, count) in views)
        {
            stored = checked(stored + storage.Numel * storage.DType.ElementSize());
            if (count > 1)
            {
                shared++;
                onShared += count;
            }
        }
        return (stored, shared, onShared);
    }

    /// <inheritdoc/>
    public string Path { get; }

    /// <inheritdoc/>
    public string Format => "pytorch";

    /// <summary>Zip or legacy layout, for reports: the legacy one is rarer and worth pointing out.</summary>
    public PyTorchContainer Container { get; }

    /// <summary>Every dictionary of tensors in the file, in the order the pickle holds them.</summary>
    public IReadOnlyList<PyTorchTensorDictionary> TensorDictionaries { get; }

    /// <summary>The key path of the dictionary <see cref="Tensors"/> comes from (empty for the top level).</summary>
    public string SelectedKeyPath { get; }

    /// <summary>Why that dictionary was chosen, in words a report can show as is.</summary>
    public string SelectionReason { get; }

    /// <summary>
    /// The wrapper prefix every tensor name shares, made of <c>module.</c> (DataParallel) and <c>_orig_mod.</c>
    /// (torch.compile) in the order they occur (for example <c>module.</c> or <c>_orig_mod.module.</c>); null when the
    /// names share none. Graft reports it and leaves the names alone: stripping is the caller's decision.
    /// </summary>
    public string? CommonKeyPrefix { get; }

    /// <inheritdoc/>
    public IReadOnlyList<TensorInfo> Tensors => _index.Tensors;

    /// <summary>
    /// Plain values stored beside the tensors (<c>epoch</c>, <c>optimizer/param_groups/0/lr</c> …), by key path, in
    /// invariant culture; lists of values and anything that is not a str, int, float or bool are left out.
    /// </summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// Opens and validates a checkpoint. Reads the pickle and the container's directory, not the tensor data.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="keyPath">
    /// The dictionary to read, as listed in <see cref="TensorDictionaries"/> (<c>""</c> for the top level); null picks
    /// the top level when it is a dictionary of tensors, else the only nested one, else the largest.
    /// </param>
    /// <exception cref="CheckpointFormatException">The file is malformed or hostile, or holds no dictionary of tensors.</exception>
    /// <exception cref="InvalidInputException"><paramref name="keyPath"/> names no dictionary of tensors in the file.</exception>
    public static PyTorchReader Open(string path, string? keyPath = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var file = FileIdentity.OpenInput(path);
        try
        {
            return Load(path, file, keyPath);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public bool TryGetTensor(string name, out TensorInfo info) => _index.TryGetTensor(name, out info);

    /// <inheritdoc/>
    public void ReadBytes(TensorInfo tensor, Span<byte> destination)
    {
        ThrowIfUnusable(tensor);
        var t = _index.FindForRead(tensor, destination);
        if (t.Info.ByteLength == 0)
        {
            return;
        }
        var storageStart = _storageOffsets[t.Storage.Key];
        var es = t.Storage.DType.ElementSize();
        if (t.Contiguous)
        {
            ReadExactly(storageStart + t.Offset * es, destination, t.Info.Name);
            return;
        }
        var window = new StorageWindow(this, t, storageStart);
        try
        {
            var rowLength = t.Size[^1];
            var rows = t.Info.ElementCount / rowLength;
            Gather(t, window, 0, rows, destination);
        }
        finally
        {
            window.Release();
        }
    }

    /// <inheritdoc/>
    public void CopyTo(TensorInfo tensor, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var t = Resolve(tensor);
        var total = t.Info.ByteLength;
        if (total == 0)
        {
            return;
        }
        var es = t.Storage.DType.ElementSize();
        var storageStart = _storageOffsets[t.Storage.Key];
        if (t.Contiguous)
        {
            // A stored tensor is a byte range of the zip: copied inside the kernel where it can be, as the safetensors
            // reader does, so the bytes never enter this process and its resident set stays flat however large the
            // file; the rest through a bounded buffer.
            var start = storageStart + t.Offset * es;
            var direct = FileCopy.TryCopy(_file, start, total, destination);
            FileRead.CopyRange(_file, start + direct, total - direct, destination, Path, t.Info.Name, 1 << 20);
            return;
        }
        var chunk = ArrayPool<byte>.Shared.Rent((int)Math.Min(total, 1 << 20));
        try
        {
            var rowLength = t.Size[^1];
            var rowBytes = rowLength * es;
            var rows = t.Info.ElementCount / rowLength;
            var window = new StorageWindow(this, t, storageStart);
            try
            {
                if (rowBytes > chunk.Length)
                {
                    // Rows larger than the chunk: one row at a time through a row-sized buffer.
                    var row = new byte[rowBytes];
                    for (long r = 0; r < rows; r++)
                    {
                        Gather(t, window, r, 1, row);
                        destination.Write(row);
                    }
                    return;
                }
                var rowsPerChunk = chunk.Length / rowBytes;
                for (long r = 0; r < rows; r += rowsPerChunk)
                {
                    var n = Math.Min(rowsPerChunk, rows - r);
                    var span = chunk.AsSpan(0, (int)(n * rowBytes));
                    Gather(t, window, r, n, span);
                    destination.Write(span);
                }
            }
            finally
            {
                window.Release();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _file.Dispose();
        }
    }

    private TensorEntry Resolve(TensorInfo tensor)
    {
        ThrowIfUnusable(tensor);
        return _index.Find(tensor);
    }

    private void ThrowIfUnusable(TensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ObjectDisposedException.ThrowIf(_disposed, this);
    }

    /// <summary>
    /// Reads with pread, never through a mapping: the pages stay in the page cache, outside this process, and a file
    /// truncated after opening (<c>torch.save</c> over it) is an error, not a SIGBUS (see <see cref="FileRead"/>).
    /// </summary>
    private void ReadExactly(long offset, Span<byte> destination, string tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        FileRead.Exactly(_file, offset, destination, Path, tensor);
    }

    // Copies rows [firstRow, firstRow + rowCount) of a strided view, in row-major order, into destination.
    private static void Gather(TensorEntry t, StorageWindow window, long firstRow, long rowCount, Span<byte> destination)
    {
        var es = t.Storage.DType.ElementSize();
        var rank = t.Size.Length;
        var rowLength = t.Size[^1];
        var innerStride = t.Stride[^1];
        var rowBytes = (int)(rowLength * es);
        var index = new long[rank];
        for (long r = 0; r < rowCount; r++)
        {
            // Element offset of the row's first element: decompose the row number over the outer dimensions.
            var rem = firstRow + r;
            var element = t.Offset;
            for (var d = rank - 2; d >= 0; d--)
            {
                index[d] = rem % t.Size[d];
                rem /= t.Size[d];
                element += index[d] * t.Stride[d];
            }
            var row = destination.Slice((int)(r * rowBytes), rowBytes);
            if (innerStride == 1 || rowLength == 1)
            {
                window.Read(element, rowLength, row);
            }
            else
            {
                for (long i = 0; i < rowLength; i++)
                {
                    window.Read(element + i * innerStride, 1, row.Slice((int)(i * es), es));
                }
            }
        }
    }

    /// <summary>
    /// Serves element reads for one strided view: the whole span the view touches when it is small enough to
    /// hold, otherwise a sliding window, so a transposed matrix costs one file read, not one per element.
    /// </summary>
    private sealed class StorageWindow
    {
        private readonly PyTorchReader _reader;
        private readonly string _tensor;
        private readonly long _storageStart;
        private readonly int _es;
        private readonly long _spanFirst;
        private readonly long _spanEnd; // exclusive, in elements
        private byte[]? _buffer;
        private long _bufferFirst;
        private long _bufferEnd;

        public StorageWindow(PyTorchReader reader, TensorEntry t, long storageStart)
        {
            _reader = reader;
            _tensor = t.Info.Name;
            _storageStart = storageStart;
            _es = t.Storage.DType.ElementSize();
            _spanFirst = t.Offset;
            _spanEnd = t.Reach + 1;
            var spanBytes = (_spanEnd - _spanFirst) * _es;
            if (spanBytes <= PreloadSpanLimit)
            {
                Load(_spanFirst, (int)spanBytes);
            }
        }

        public void Read(long element, long count, Span<byte> destination)
        {
            if (_buffer is null || element < _bufferFirst || element + count > _bufferEnd)
            {
                var bytes = count * _es;
                if (bytes > WindowBytes / 2)
                {
                    _reader.ReadExactly(_storageStart + element * _es, destination, _tensor);
                    return;
                }
                Load(element, (int)Math.Min(WindowBytes, (_spanEnd - element) * _es));
            }
            _buffer.AsSpan((int)((element - _bufferFirst) * _es), (int)(count * _es)).CopyTo(destination);
        }

        public void Release()
        {
            if (_buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = null;
            }
        }

        private void Load(long first, int bytes)
        {
            bytes -= bytes % _es;
            if (_buffer is null || _buffer.Length < bytes)
            {
                Release();
                _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(bytes, 1));
            }
            _reader.ReadExactly(_storageStart + first * _es, _buffer.AsSpan(0, bytes), _tensor);
            _bufferFirst = first;
            _bufferEnd = first + bytes / _es;
        }
    }

    internal sealed class TensorEntry(TensorInfo info, StorageRef storage, long offset, long[] size, long[] stride, bool contiguous, long reach)
    {
        public TensorInfo Info { get; } = info;
        public StorageRef Storage { get; } = storage;
        public long Offset { get; } = offset;
        public long[] Size { get; } = size;
        public long[] Stride { get; } = stride;
        public bool Contiguous { get; } = contiguous;

        /// <summary>Index of the last storage element the view touches.</summary>
        public long Reach { get; } = reach;
    }

    private static string? FindCommonPrefix(IReadOnlyList<TensorInfo> tensors)
    {
        if (tensors.Count == 0)
        {
            return null;
        }
        var prefix = "";
        while (true)
        {
            var next = new[] { "module.", "_orig_mod." }.FirstOrDefault(p => tensors.All(t => t.Name.Length > prefix.Length + p.Length
                && string.CompareOrdinal(t.Name, prefix.Length, p, 0, p.Length) == 0));
            if (next is null)
            {
                return prefix.Length == 0 ? null : prefix;
            }
            prefix += next;
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_]{1,64}$")]
    private static partial Regex StorageKeyPattern();
}
