using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints.Onnx;

/// <summary>
/// The protobuf wire format decoded straight from bytes, without generated code or a stream per message: tags,
/// varints, packed varints and strings, every length checked against the end of its message. It knows nothing of
/// ONNX; the ONNX reader gives it the model's bytes and names the messages it asks for in its errors.
/// </summary>
/// <remarks>
/// Positions are absolute offsets in the file: <paramref name="origin"/> points at the byte of offset 0 (the mapped
/// file), or at where offset 0 would be for a window of the file read into memory (only offsets inside the window are
/// ever read). Length-delimited values are not read while splitting a message into fields, so a 1 GB
/// <c>raw_data</c> costs nothing.
/// </remarks>
internal readonly unsafe struct ProtobufWire(string path, byte* origin)
{
    /// <summary>Longest tag plus longest varint: the most bytes one field's header takes.</summary>
    private const int MaxFieldHeader = 5 + 10;

    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    /// <summary>
    /// The fields of the message in [<paramref name="start"/>, <paramref name="end"/>) of an open file, read with
    /// small <c>pread</c>s of each field's header (the file is not mapped, and values are skipped, not read).
    /// </summary>
    public static List<ProtobufField> Fields(SafeFileHandle file, string path, long start, long end, string? tensor, string what)
    {
        var fields = new List<ProtobufField>();
        var window = new byte[MaxFieldHeader];
        var pos = start;
        while (pos < end)
        {
            var n = (int)Math.Min(MaxFieldHeader, end - pos);
            FileRead.Exactly(file, pos, window.AsSpan(0, n), path, tensor);
            fixed (byte* w = window)
            {
                // Offset pos is window[0]; Next reads at most MaxFieldHeader bytes from pos, all inside the window.
                fields.Add(new ProtobufWire(path, w - pos).Next(ref pos, end, tensor, what));
            }
        }
        return fields;
    }

    /// <summary>
    /// Splits the message in [<paramref name="start"/>, <paramref name="end"/>) into fields. <paramref name="what"/>
    /// names the message in errors, <paramref name="tensor"/> the tensor it belongs to (or null).
    /// </summary>
    public List<ProtobufField> Fields(long start, long end, string? tensor, string what)
    {
        var fields = new List<ProtobufField>();
        var pos = start;
        while (pos < end)
        {
            fields.Add(Next(ref pos, end, tensor, what));
        }
        return fields;
    }

    /// <summary>The field whose tag starts at <paramref name="pos"/>; <paramref name="pos"/> is advanced past its value.</summary>
    public ProtobufField Next(ref long pos, long end, string? tensor, string what)
    {
        var tagStart = pos;
        var tag = ReadVarint(ref pos, end, tensor, what);
        if (tag > uint.MaxValue)
        {
            throw Corrupt(tensor, $"{what} is not a valid protobuf message: the tag at offset {tagStart} is over 32 bits.");
        }
        var number = (int)(tag >> 3);
        var wire = (int)(tag & 7);
        var tagEnd = pos;
        if (number == 0)
        {
            throw Corrupt(tensor, $"{what}: field number 0 at offset {tagStart}.");
        }
        switch (wire)
        {
            case 0:
                var varint = ReadVarint(ref pos, end, tensor, what);
                return new ProtobufField(number, wire, tagStart, tagEnd, tagEnd, pos, varint);
            case 1 or 5:
                var size = wire == 1 ? 8 : 4;
                if (end - pos < size)
                {
                    throw Corrupt(tensor, $"{what} is not a valid protobuf message: field {number} at offset {tagStart} is cut off by the end of its message at {end}.");
                }
                pos += size;
                return new ProtobufField(number, wire, tagStart, tagEnd, tagEnd, pos, 0);
            case 2:
                var len = ReadVarint(ref pos, end, tensor, what);
                if (len > (ulong)(end - pos))
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, tensor,
                        $"{what}: field {number} at offset {tagStart} declares {len} bytes, past the end of its message at {end}.");
                }
                var valueStart = pos;
                pos += (long)len;
                return new ProtobufField(number, wire, tagStart, tagEnd, valueStart, pos, 0);
            default:
                throw Corrupt(tensor, $"{what}: field {number} at offset {tagStart} has wire type {wire} (groups are not used by ONNX).");
        }
    }

    /// <summary>A base-128 varint at <paramref name="pos"/> (advanced past it), at most 10 bytes and 64 bits, inside [pos, end).</summary>
    public ulong ReadVarint(ref long pos, long end, string? tensor, string what)
    {
        ulong result = 0;
        var at = pos;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (pos >= end)
            {
                throw Corrupt(tensor, $"{what} is not a valid protobuf message: the varint at offset {at} is cut off by the end of its message at {end}.");
            }
            var b = origin[pos++];
            if (shift == 63 && b > 1)
            {
                throw Corrupt(tensor, $"{what} is not a valid protobuf message: the varint at offset {at} overflows 64 bits.");
            }
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return result;
            }
        }
        throw Corrupt(tensor, $"{what} is not a valid protobuf message: the varint at offset {at} is longer than 10 bytes.");
    }

    /// <summary>The int64 values of a varint field, packed (wire type 2) or not (wire type 0).</summary>
    public List<long> Varints(ProtobufField f, string tensor)
    {
        if (f.WireType == 0)
        {
            return [(long)f.Varint];
        }
        if (f.WireType != 2)
        {
            throw Corrupt(tensor, $"field {f.Number} has wire type {f.WireType}.");
        }
        var values = new List<long>();
        var pos = f.ValueStart;
        while (pos < f.End)
        {
            values.Add((long)ReadVarint(ref pos, f.End, tensor, $"packed field {f.Number}"));
        }
        return values;
    }

    /// <summary>A string field's value: strict UTF-8, at most 1 MiB.</summary>
    public string Text(ProtobufField f, string? tensor, string what)
    {
        if (f.ValueLength > 1 << 20)
        {
            throw Corrupt(tensor, $"{what} at offset {f.ValueStart} is {f.ValueLength} bytes long.");
        }
        try
        {
            return StrictUtf8.GetString(new ReadOnlySpan<byte>(origin + f.ValueStart, (int)f.ValueLength));
        }
        catch (DecoderFallbackException)
        {
            throw Corrupt(tensor, $"{what} at offset {f.ValueStart} is not valid UTF-8.");
        }
    }

    /// <summary>A <see cref="CheckpointErrorKind.Corrupt"/> error naming the file and the tensor.</summary>
    public CheckpointFormatException Corrupt(string? tensor, string detail) => new(CheckpointErrorKind.Corrupt, path, tensor, detail);
}
