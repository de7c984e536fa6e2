using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints;

/// <summary>
/// A read-only memory mapping of a whole file with a stable pointer: the one place that maps files for the readers
/// (safetensors, PyTorch, ONNX), which validate every range against <see cref="Length"/> before reading through it.
/// </summary>
/// <remarks>
/// The file handle stays the caller's (readers also use it for <see cref="RandomAccess"/> reads). A file truncated by
/// another process after mapping faults the process on access; <see cref="FileShare.Read"/> is the only protection.
/// </remarks>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;

    private MappedFile(MemoryMappedFile map, MemoryMappedViewAccessor view, byte* pointer, long length)
    {
        _map = map;
        _view = view;
        _base = pointer;
        Length = length;
    }

    /// <summary>Length of the file when it was mapped.</summary>
    public long Length { get; }

    /// <summary>The first byte of the file.</summary>
    /// <exception cref="ObjectDisposedException">The mapping was released.</exception>
    public byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base is null, this);
            return _base;
        }
    }

    /// <summary>Maps the whole file behind <paramref name="handle"/>, which must not be empty (an empty file cannot be mapped).</summary>
    public static MappedFile Map(SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        var length = RandomAccess.GetLength(handle);
        var map = MemoryMappedFile.CreateFromFile(handle, mapName: null, capacity: 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        MemoryMappedViewAccessor? view = null;
        try
        {
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            return new MappedFile(map, view, p + view.PointerOffset, length);
        }
        catch
        {
            view?.Dispose();
            map.Dispose();
            throw;
        }
    }

    /// <summary>A slice of the file.</summary>
    public ReadOnlySpan<byte> Span(long offset, int length) => new(Pointer + offset, length);

    /// <summary>Releases the mapping (not the file handle).</summary>
    public void Dispose()
    {
        if (_base is null)
        {
            return;
        }
        _base = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
