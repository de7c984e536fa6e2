using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints;

/// <summary>
/// Reads of tensor bytes at a file offset, with <c>pread</c>. Readers map a file only while they parse its header:
/// a mapped page of a file that another process truncates afterwards (a training loop saving over the checkpoint
/// being read, <c>torch.save</c> truncates first) kills the process with SIGBUS when touched, and no exception handler
/// can catch that. A read that comes up short is a clear error instead.
/// </summary>
internal static class FileRead
{
    /// <summary>Fills <paramref name="destination"/> from <paramref name="offset"/> of <paramref name="file"/>.</summary>
    /// <exception cref="CheckpointFormatException">The file ends before <paramref name="destination"/> is full (it became
    /// shorter after it was opened and checked).</exception>
    public static void Exactly(SafeFileHandle file, long offset, Span<byte> destination, string path, string? tensor)
    {
        while (destination.Length > 0)
        {
            var n = RandomAccess.Read(file, destination, offset);
            if (n <= 0)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, tensor,
                    "the file ends before the tensor's data: it became shorter after it was opened (was it overwritten or truncated meanwhile?).");
            }
            destination = destination[n..];
            offset += n;
        }
    }

    /// <summary>Copies <paramref name="length"/> bytes from <paramref name="offset"/> to <paramref name="destination"/> in bounded chunks.</summary>
    /// <exception cref="CheckpointFormatException">The file ends early (see <see cref="Exactly"/>).</exception>
    public static void CopyRange(SafeFileHandle file, long offset, long length, Stream destination, string path, string? tensor, int chunkSize)
    {
        if (length <= 0)
        {
            return;
        }
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent((int)Math.Min(length, chunkSize));
        try
        {
            while (length > 0)
            {
                var n = (int)Math.Min(length, buffer.Length);
                Exactly(file, offset, buffer.AsSpan(0, n), path, tensor);
                destination.Write(buffer, 0, n);
                offset += n;
                length -= n;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
