using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints.PyTorch;

/// <summary>One entry of an uncompressed zip: where its bytes are in the file.</summary>
/// <remarks>
/// <see cref="Method"/> and <see cref="Encrypted"/> are reported rather than refused here, so the caller can first
/// recognise what the archive is (a TorchScript archive compresses its code) and say so.
/// </remarks>
internal sealed record StoredZipEntry(string Name, long DataOffset, long Length, uint Crc32, int Method, bool Encrypted);

/// <summary>
/// Reads the central directory of a zip (with zip64) and checks each entry's local header, so that every entry maps
/// to a byte range that really lies inside the file. Only stored entries can be read; compressed or encrypted ones
/// are listed with their method so that the caller refuses them (PyTorch never writes them).
/// </summary>
internal static class StoredZip
{
    private const uint LocalSignature = 0x04034b50;
    private const uint CentralSignature = 0x02014b50;
    private const uint EndSignature = 0x06054b50;
    private const uint End64Signature = 0x06064b50;
    private const uint End64LocatorSignature = 0x07064b50;
    private const int MaxCentralDirectory = 256 << 20;
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    public static List<StoredZipEntry> ReadEntries(SafeFileHandle file, long fileLength, string path)
    {
        if (fileLength < 22)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.TooShort, path, null, $"{fileLength} bytes is too short for a zip archive");
        }
        var tailLength = (int)Math.Min(fileLength, 22 + 0xFFFF);
        var tail = ReadAt(file, fileLength - tailLength, tailLength, path);
        var eocd = -1;
        for (var i = tailLength - 22; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == EndSignature
                && i + 22 + BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(i + 20)) == tailLength)
            {
                eocd = i;
                break;
            }
        }
        if (eocd < 0)
        {
            throw Corrupt(path, "no zip end-of-central-directory record");
        }
        var eocdPosition = fileLength - tailLength + eocd;
        var e = tail.AsSpan(eocd);
        if (BinaryPrimitives.ReadUInt16LittleEndian(e[4..]) != 0 || BinaryPrimitives.ReadUInt16LittleEndian(e[6..]) != 0)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null, "multi-disk zip archives are not supported");
        }
        long count = BinaryPrimitives.ReadUInt16LittleEndian(e[10..]);
        long cdSize = BinaryPrimitives.ReadUInt32LittleEndian(e[12..]);
        long cdOffset = BinaryPrimitives.ReadUInt32LittleEndian(e[16..]);
        var cdLimit = eocdPosition;

        if (eocdPosition >= 20)
        {
            var locator = ReadAt(file, eocdPosition - 20, 20, path);
            if (BinaryPrimitives.ReadUInt32LittleEndian(locator) == End64LocatorSignature)
            {
                var e64Offset = BinaryPrimitives.ReadUInt64LittleEndian(locator.AsSpan(8));
                if (e64Offset > (ulong)(eocdPosition - 20 - 56))
                {
                    throw Corrupt(path, "zip64 end record lies outside the file");
                }
                var e64 = ReadAt(file, (long)e64Offset, 56, path);
                if (BinaryPrimitives.ReadUInt32LittleEndian(e64) != End64Signature)
                {
                    throw Corrupt(path, "zip64 locator points at no zip64 end record");
                }
                var count64 = BinaryPrimitives.ReadUInt64LittleEndian(e64.AsSpan(32));
                var size64 = BinaryPrimitives.ReadUInt64LittleEndian(e64.AsSpan(40));
                var offset64 = BinaryPrimitives.ReadUInt64LittleEndian(e64.AsSpan(48));
                if (count64 > long.MaxValue || size64 > long.MaxValue || offset64 > long.MaxValue)
                {
                    throw Corrupt(path, "zip64 end record sizes are out of range");
                }
                count = (long)count64;
                cdSize = (long)size64;
                cdOffset = (long)offset64;
                cdLimit = (long)e64Offset;
            }
        }
        if (cdOffset > cdLimit || cdSize > cdLimit - cdOffset)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, null, $"zip central directory ({cdSize} bytes at {cdOffset}) lies outside the file");
        }
        if (cdSize > MaxCentralDirectory)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.HeaderTooLarge, path, null, $"zip central directory of {cdSize} bytes exceeds the {MaxCentralDirectory}-byte cap");
        }
        if (count > cdSize / 46)
        {
            throw Corrupt(path, $"zip claims {count} entries in a {cdSize}-byte central directory");
        }

        var cd = ReadAt(file, cdOffset, (int)cdSize, path);
        var entries = new List<StoredZipEntry>((int)count);
        var p = 0;
        for (long i = 0; i < count; i++)
        {
            if (p + 46 > cd.Length || BinaryPrimitives.ReadUInt32LittleEndian(cd.AsSpan(p)) != CentralSignature)
            {
                throw Corrupt(path, $"zip central directory entry {i} is malformed");
            }
            var h = cd.AsSpan(p);
            var flags = BinaryPrimitives.ReadUInt16LittleEndian(h[8..]);
            var method = BinaryPrimitives.ReadUInt16LittleEndian(h[10..]);
            var crc = BinaryPrimitives.ReadUInt32LittleEndian(h[16..]);
            long compressed = BinaryPrimitives.ReadUInt32LittleEndian(h[20..]);
            long uncompressed = BinaryPrimitives.ReadUInt32LittleEndian(h[24..]);
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(h[28..]);
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(h[30..]);
            int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(h[32..]);
            long localOffset = BinaryPrimitives.ReadUInt32LittleEndian(h[42..]);
            if (p + 46L + nameLength + extraLength + commentLength > cd.Length)
            {
                throw Corrupt(path, $"zip central directory entry {i} runs past the directory");
            }
            var nameBytes = cd.AsSpan(p + 46, nameLength);
            string name;
            try
            {
                name = StrictUtf8.GetString(nameBytes);
            }
            catch (DecoderFallbackException ex)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"zip entry {i} has a name that is not UTF-8", ex);
            }
            var extra = cd.AsSpan(p + 46 + nameLength, extraLength);
            ApplyZip64(extra, ref uncompressed, ref compressed, ref localOffset, path, name);
            p += 46 + nameLength + extraLength + commentLength;

            if (method == 0 && compressed != uncompressed)
            {
                throw Corrupt(path, $"zip entry '{name}' is stored but its sizes differ ({compressed} and {uncompressed})");
            }
            if (localOffset > cdOffset - 30)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, null, $"zip entry '{name}' has its header outside the file");
            }
            var local = ReadAt(file, localOffset, 30, path);
            if (BinaryPrimitives.ReadUInt32LittleEndian(local) != LocalSignature)
            {
                throw Corrupt(path, $"zip entry '{name}' has no local header at {localOffset}");
            }
            if (BinaryPrimitives.ReadUInt16LittleEndian(local.AsSpan(8)) != method)
            {
                throw Corrupt(path, $"zip entry '{name}': local and central headers disagree on the compression method");
            }
            int localNameLength = BinaryPrimitives.ReadUInt16LittleEndian(local.AsSpan(26));
            int localExtraLength = BinaryPrimitives.ReadUInt16LittleEndian(local.AsSpan(28));
            var dataOffset = localOffset + 30 + localNameLength + localExtraLength;
            if (localNameLength != nameLength || dataOffset > cdOffset || !ReadAt(file, localOffset + 30, nameLength, path).AsSpan().SequenceEqual(nameBytes))
            {
                throw Corrupt(path, $"zip entry '{name}': local and central headers disagree on the name");
            }
            if (compressed > cdOffset - dataOffset)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, null, $"zip entry '{name}' ({compressed} bytes at {dataOffset}) runs past the data area");
            }
            entries.Add(new StoredZipEntry(name, dataOffset, uncompressed, crc, method, (flags & 1) != 0));
        }
        return entries;
    }

    /// <summary>Reads a whole (small) entry and checks its CRC.</summary>
    public static byte[] ReadEntry(SafeFileHandle file, StoredZipEntry entry, string path)
    {
        var bytes = ReadAt(file, entry.DataOffset, checked((int)entry.Length), path);
        if (Crc32.Append(0, bytes) != entry.Crc32)
        {
            throw Corrupt(path, $"zip entry '{entry.Name}' fails its CRC-32 check");
        }
        return bytes;
    }

    public static byte[] ReadAt(SafeFileHandle file, long offset, int length, string path)
    {
        var buffer = new byte[length];
        var done = 0;
        while (done < length)
        {
            var n = RandomAccess.Read(file, buffer.AsSpan(done), offset + done);
            if (n == 0)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, null, $"{length} bytes at {offset} run past the end of the file");
            }
            done += n;
        }
        return buffer;
    }

    private static void ApplyZip64(ReadOnlySpan<byte> extra, ref long uncompressed, ref long compressed, ref long localOffset, string path, string name)
    {
        while (extra.Length >= 4)
        {
            var id = BinaryPrimitives.ReadUInt16LittleEndian(extra);
            int size = BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]);
            if (4 + size > extra.Length)
            {
                throw Corrupt(path, $"zip entry '{name}' has a malformed extra field");
            }
            if (id == 1)
            {
                var z = extra.Slice(4, size);
                long Next(ref ReadOnlySpan<byte> s)
                {
                    if (s.Length < 8)
                    {
                        throw Corrupt(path, $"zip entry '{name}' has a short zip64 extra field");
                    }
                    var v = BinaryPrimitives.ReadUInt64LittleEndian(s);
                    s = s[8..];
                    return v > long.MaxValue ? throw Corrupt(path, $"zip entry '{name}' has a zip64 size out of range") : (long)v;
                }
                if (uncompressed == 0xFFFFFFFF)
                {
                    uncompressed = Next(ref z);
                }
                if (compressed == 0xFFFFFFFF)
                {
                    compressed = Next(ref z);
                }
                if (localOffset == 0xFFFFFFFF)
                {
                    localOffset = Next(ref z);
                }
                return;
            }
            extra = extra[(4 + size)..];
        }
    }

    private static CheckpointFormatException Corrupt(string path, string detail) => new(CheckpointErrorKind.Corrupt, path, null, detail);
}
