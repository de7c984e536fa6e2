using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints;

/// <summary>What kind of object a path names, as the file system says (<c>S_IFMT</c>).</summary>
internal enum FileKind
{
    /// <summary>An ordinary file: the only kind Graft reads a checkpoint from or replaces with one.</summary>
    Regular,
    /// <summary>A folder.</summary>
    Directory,
    /// <summary>A symbolic link (seen only when links are not followed).</summary>
    SymbolicLink,
    /// <summary>A named pipe: opening it for reading blocks until a writer appears.</summary>
    Fifo,
    /// <summary>A character device such as <c>/dev/null</c>.</summary>
    CharacterDevice,
    /// <summary>A block device.</summary>
    BlockDevice,
    /// <summary>A Unix socket.</summary>
    Socket,
    /// <summary>Anything else.</summary>
    Other,
}

/// <summary>
/// A file's identity and kind: device and inode (two paths name the same file exactly when these agree, whatever links,
/// hard links or bind mounts lie between them), the number of hard links, and what kind of object it is.
/// </summary>
/// <param name="Kind">The object's kind.</param>
/// <param name="Device">The device holding it.</param>
/// <param name="Inode">Its inode on that device.</param>
/// <param name="Links">How many names (hard links) it has.</param>
internal readonly partial record struct FileIdentity(FileKind Kind, ulong Device, ulong Inode, ulong Links)
{
    /// <summary>True on the platforms where identities come from the file system (Linux and macOS); elsewhere callers
    /// fall back to comparing resolved paths, and special files are not told apart.</summary>
    public static bool Supported => OperatingSystem.IsLinux() || OperatingSystem.IsMacOS();

    /// <summary>Same device and inode: the same file.</summary>
    public bool SameFileAs(FileIdentity other) => Device == other.Device && Inode == other.Inode;

    /// <summary>
    /// The identity of what <paramref name="path"/> names, every link along it resolved (the last one too unless
    /// <paramref name="followLastLink"/> is false); null when nothing is there, it cannot be examined, or the platform
    /// does not support it.
    /// </summary>
    public static FileIdentity? Of(string path, bool followLastLink = true)
    {
        if (!Supported)
        {
            return null;
        }
        if (OperatingSystem.IsLinux() && RawPath.TryGetRaw(path, out var folder, out var name))
        {
            return Native.LinuxStatAt(folder, name, followLastLink);
        }
        return OperatingSystem.IsLinux() ? Native.LinuxStat(path, followLastLink) : Native.MacStat(path, followLastLink);
    }

    /// <summary>The identity of an open file; null where unsupported or when the call fails.</summary>
    public static FileIdentity? Of(SafeFileHandle handle)
    {
        if (!Supported)
        {
            return null;
        }
        return OperatingSystem.IsLinux() ? Native.LinuxStat(handle) : Native.MacStat(handle);
    }

    /// <summary>
    /// Opens a checkpoint input for reading, shared with other readers, never for writing. Anything but a regular file
    /// (a FIFO, a device, a socket) is refused with <see cref="CheckpointErrorKind.NotRegularFile"/> before it can block
    /// the process: the path is examined first, then opened with <c>O_NONBLOCK</c> (an open of a FIFO with no writer
    /// would otherwise wait forever) and the open file examined again, so a file swapped in between is refused too.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="checkpoint">The checkpoint that names this file (for a shard or external data), for the message; null when it is the checkpoint itself.</param>
    /// <exception cref="CheckpointFormatException"><see cref="CheckpointErrorKind.NotRegularFile"/>.</exception>
    /// <exception cref="FileNotFoundException">Nothing is at the path.</exception>
    public static SafeFileHandle OpenInput(string path, string? checkpoint = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!Supported)
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
        if (Of(path) is { } before && before.Kind is not (FileKind.Regular or FileKind.Directory))
        {
            throw NotRegular(path, checkpoint, before.Kind);
        }
        SafeFileHandle? folder = null;
        byte[] name = [];
        var raw = OperatingSystem.IsLinux() && RawPath.TryGetRaw(path, out folder, out name);
        var fd = raw ? RawPath.OpenAt(folder!, name, Native.LinuxReadFlags)
            : OperatingSystem.IsLinux() ? Native.LinuxOpenReadNonBlocking(path) : Native.MacOpenReadNonBlocking(path);
        if (fd < 0 && raw)
        {
            // A name that is not UTF-8 (RawPath): .NET cannot open it to raise its usual exception.
            var errno = Marshal.GetLastPInvokeError();
            throw errno == 2
                ? new FileNotFoundException($"{path}: no such file.", path)
                : new IOException($"{path}: cannot be read ({Marshal.GetPInvokeErrorMessage(errno)}).");
        }
        if (fd < 0)
        {
            // Let .NET open it the usual way to raise its usual exception (missing, permissions, a folder).
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (Of(handle) is { } opened && opened.Kind != FileKind.Regular)
        {
            handle.Dispose();
            if (opened.Kind == FileKind.Directory)
            {
                throw new UnauthorizedAccessException($"{path}: is a folder, not a checkpoint file.");
            }
            throw NotRegular(path, checkpoint, opened.Kind);
        }
        return handle;
    }

    /// <summary>A kind as a message says it.</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Regular => "a regular file",
        FileKind.Directory => "a folder",
        FileKind.SymbolicLink => "a symbolic link",
        FileKind.Fifo => "a named pipe (FIFO)",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Socket => "a socket",
        _ => "a special file",
    };

    private static CheckpointFormatException NotRegular(string path, string? checkpoint, FileKind kind) =>
        checkpoint is null
            ? new(CheckpointErrorKind.NotRegularFile, path, null, $"is {Describe(kind)}, not a regular file; Graft reads checkpoints from regular files only.")
            : new(CheckpointErrorKind.NotRegularFile, checkpoint, null, $"'{path}' is {Describe(kind)}, not a regular file; Graft reads checkpoints from regular files only.");

    private static FileKind KindOf(uint mode) => (mode & 0xF000) switch
    {
        0x8000 => FileKind.Regular,
        0x4000 => FileKind.Directory,
        0xA000 => FileKind.SymbolicLink,
        0x1000 => FileKind.Fifo,
        0x2000 => FileKind.CharacterDevice,
        0x6000 => FileKind.BlockDevice,
        0xC000 => FileKind.Socket,
        _ => FileKind.Other,
    };

    /// <summary>
    /// libc calls. Linux uses <c>statx</c>, whose record has one layout on every architecture; macOS uses
    /// <c>stat</c>/<c>lstat</c>/<c>fstat</c> with the 64-bit-inode layout of arm64 (the only macOS Graft ships for).
    /// </summary>
    private static unsafe partial class Native
    {
        private const int AtFdCwd = -100;
        private const int AtSymlinkNoFollow = 0x100;
        private const int AtEmptyPath = 0x1000;
        private const uint StatxBasicStats = 0x7ff;
        private const int StatxSize = 256;

        // O_RDONLY | O_NONBLOCK | O_CLOEXEC.
        private const int LinuxOpenFlags = 0x800 | 0x80000;

        /// <summary>The flags of an input's open on Linux (for <see cref="RawPath.OpenAt"/>).</summary>
        public const int LinuxReadFlags = LinuxOpenFlags;
        private const int MacOpenFlags = 0x4 | 0x1000000;
        private const int MacStatSize = 144;

        [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        private static partial int Statx(int dirfd, string path, int flags, uint mask, byte* buffer);

        [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        private static partial int Statx(SafeFileHandle dirfd, string path, int flags, uint mask, byte* buffer);

        [LibraryImport("libc", EntryPoint = "statx", SetLastError = true)]
        private static partial int Statx(SafeFileHandle dirfd, byte* path, int flags, uint mask, byte* buffer);

        // open(2) is variadic; only the two fixed arguments are passed (no O_CREAT, so no mode).
        [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        private static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        private static partial int MacStatPath(string path, byte* buffer);

        [LibraryImport("libc", EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        private static partial int MacLStatPath(string path, byte* buffer);

        [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
        private static partial int MacFStat(SafeFileHandle fd, byte* buffer);

        public static FileIdentity? LinuxStat(string path, bool follow)
        {
            byte* b = stackalloc byte[StatxSize];
            return Statx(AtFdCwd, path, follow ? 0 : AtSymlinkNoFollow, StatxBasicStats, b) == 0 ? FromStatx(b) : null;
        }

        public static FileIdentity? LinuxStat(SafeFileHandle handle)
        {
            byte* b = stackalloc byte[StatxSize];
            return Statx(handle, "", AtEmptyPath, StatxBasicStats, b) == 0 ? FromStatx(b) : null;
        }

        public static int LinuxOpenReadNonBlocking(string path) => Open(path, LinuxOpenFlags);

        /// <summary>A name inside an open folder, given as bytes (a name that is not UTF-8, see <see cref="RawPath"/>).</summary>
        public static FileIdentity? LinuxStatAt(SafeFileHandle folder, byte[] name, bool follow)
        {
            byte* b = stackalloc byte[StatxSize];
            var z = new byte[name.Length + 1];
            name.CopyTo(z, 0);
            fixed (byte* p = z)
            {
                return Statx(folder, p, follow ? 0 : AtSymlinkNoFollow, StatxBasicStats, b) == 0 ? FromStatx(b) : null;
            }
        }

        public static FileIdentity? MacStat(string path, bool follow)
        {
            byte* b = stackalloc byte[MacStatSize];
            return (follow ? MacStatPath(path, b) : MacLStatPath(path, b)) == 0 ? FromMacStat(b) : null;
        }

        public static FileIdentity? MacStat(SafeFileHandle handle)
        {
            byte* b = stackalloc byte[MacStatSize];
            return MacFStat(handle, b) == 0 ? FromMacStat(b) : null;
        }

        public static int MacOpenReadNonBlocking(string path) => Open(path, MacOpenFlags);

        // struct statx: stx_nlink u32 @16, stx_mode u16 @28, stx_ino u64 @32, stx_dev_major/minor u32 @136/@140.
        private static FileIdentity FromStatx(byte* b) =>
            new(KindOf(*(ushort*)(b + 28)), ((ulong)*(uint*)(b + 136) << 32) | *(uint*)(b + 140), *(ulong*)(b + 32), *(uint*)(b + 16));

        // Darwin struct stat (64-bit inodes): st_dev i32 @0, st_mode u16 @4, st_nlink u16 @6, st_ino u64 @8.
        private static FileIdentity FromMacStat(byte* b) =>
            new(KindOf(*(ushort*)(b + 4)), *(uint*)b, *(ulong*)(b + 8), *(ushort*)(b + 6));
    }
}
