using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints;

/// <summary>
/// Copies between files inside the kernel (Linux <c>copy_file_range</c>, what <c>cp</c> uses): the bytes go from the
/// source's page cache to the destination's without passing through this process, which halves the memory traffic of a
/// copied tensor and keeps it out of the resident set.
/// </summary>
internal static partial class FileCopy
{
    private const int EINTR = 4;

    /// <summary>
    /// Below this a kernel copy costs more than it saves (flush, two system calls, seek): small tensors such as
    /// BatchNorm vectors go through the stream's buffer with their neighbours.
    /// </summary>
    internal const long MinimumBytes = 256 * 1024;

    /// <summary>
    /// Copies go in chunks of this size so that the disk starts writing one chunk while the next is copied (see
    /// <see cref="StartWriteback"/>): the final fsync then waits for the last chunk instead of the whole file.
    /// </summary>
    internal const long ChunkBytes = 32L << 20;

    private static volatile bool s_unavailable;

    private static volatile bool s_noWriteback;

    /// <summary>
    /// Copies up to <paramref name="length"/> bytes from <paramref name="source"/> at <paramref name="sourceOffset"/> to
    /// the current position of <paramref name="destination"/> when it is a seekable <see cref="FileStream"/>, directly or
    /// under a <see cref="PayloadStream"/>, and advances it. Returns the bytes copied: 0 when the kernel path does not
    /// apply (another OS or stream, a file system that refuses), fewer than asked when it stopped early; the caller
    /// copies the rest the ordinary way, which also reports a source that became shorter.
    /// </summary>
    public static long TryCopy(SafeFileHandle source, long sourceOffset, long length, Stream destination)
    {
        if (!OperatingSystem.IsLinux() || s_unavailable || length < MinimumBytes)
        {
            return 0;
        }
        var counter = destination as PayloadStream;
        if ((counter?.Inner ?? destination) is not FileStream { CanSeek: true, CanWrite: true } file || (counter is not null && !counter.CanAccept(length)))
        {
            return 0;
        }
        var target = file.SafeFileHandle; // flushes the stream's buffer
        long inOffset = sourceOffset;
        long outOffset = file.Position;
        long copied = 0;
        bool addedIn = false, addedOut = false;
        try
        {
            source.DangerousAddRef(ref addedIn);
            target.DangerousAddRef(ref addedOut);
            int fdIn = (int)source.DangerousGetHandle();
            int fdOut = (int)target.DangerousGetHandle();
            while (copied < length)
            {
                long chunkStart = outOffset;
                nint n = CopyFileRange(fdIn, ref inOffset, fdOut, ref outOffset, (nuint)Math.Min(length - copied, ChunkBytes), 0);
                if (n > 0)
                {
                    copied += n;
                    StartWriteback(fdOut, chunkStart, n);
                    continue;
                }
                if (n < 0 && Marshal.GetLastPInvokeError() == EINTR)
                {
                    continue;
                }
                if (n < 0 && copied == 0)
                {
                    // EXDEV, ENOSYS, EINVAL, EOPNOTSUPP …: this pair of files (or this kernel) cannot; do not ask again.
                    s_unavailable = true;
                }
                break;
            }
        }
        catch (EntryPointNotFoundException)
        {
            s_unavailable = true;
        }
        catch (DllNotFoundException)
        {
            s_unavailable = true;
        }
        finally
        {
            if (addedIn)
            {
                source.DangerousRelease();
            }
            if (addedOut)
            {
                target.DangerousRelease();
            }
        }
        if (copied > 0)
        {
            file.Seek(outOffset, SeekOrigin.Begin);
            counter?.Advance(copied);
        }
        return copied;
    }

    /// <summary>
    /// Asks the kernel to start writing the given range of the output to disk now, without waiting (Linux
    /// <c>sync_file_range(SYNC_FILE_RANGE_WRITE)</c>). It changes no data and promises nothing: durability still comes
    /// from the fsync before the atomic rename; this only moves disk work earlier, so it overlaps the copy. Best effort:
    /// any failure turns it off for the process.
    /// </summary>
    internal static void StartWriteback(int fd, long offset, long length)
    {
        if (s_noWriteback)
        {
            return;
        }
        try
        {
            if (SyncFileRange(fd, offset, length, SyncFileRangeWrite) != 0 && Marshal.GetLastPInvokeError() != EINTR)
            {
                s_noWriteback = true;
            }
        }
        catch (EntryPointNotFoundException)
        {
            s_noWriteback = true;
        }
    }

    /// <summary>True when <paramref name="destination"/> is a seekable <see cref="FileStream"/>, directly or under a <see cref="PayloadStream"/>: what <see cref="WriteGathered"/> writes to.</summary>
    internal static bool CanWriteGathered(Stream destination) =>
        ((destination as PayloadStream)?.Inner ?? destination) is FileStream { CanSeek: true, CanWrite: true };

    /// <summary>
    /// Writes <paramref name="pieces"/> (<paramref name="total"/> bytes) one after the other at the current position of
    /// a destination <see cref="CanWriteGathered"/> accepts, by one gathering write (<c>pwritev</c>), and advances it: a
    /// tensor assembled from pieces of memory reaches the file without first being copied into one buffer.
    /// </summary>
    /// <exception cref="InvalidOperationException">The pieces would pass the payload's declared length.</exception>
    internal static void WriteGathered(Stream destination, IReadOnlyList<ReadOnlyMemory<byte>> pieces, long total)
    {
        var counter = destination as PayloadStream;
        var file = (FileStream)(counter?.Inner ?? destination);
        if (total == 0)
        {
            return;
        }
        counter?.Advance(total);
        var handle = file.SafeFileHandle; // flushes the stream's buffer
        long at = file.Position;
        RandomAccess.Write(handle, pieces, at);
        file.Seek(at + total, SeekOrigin.Begin);
    }

    private const uint SyncFileRangeWrite = 2;

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(int fd, long offset, long nbytes, uint flags);

    [LibraryImport("libc", EntryPoint = "copy_file_range", SetLastError = true)]
    private static partial nint CopyFileRange(int fdIn, ref long offIn, int fdOut, ref long offOut, nuint length, uint flags);
}
