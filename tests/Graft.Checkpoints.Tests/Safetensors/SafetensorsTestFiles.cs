using System.Buffers.Binary;
using System.Text;

namespace Graft.Checkpoints.Tests.Safetensors;

/// <summary>Builds safetensors images byte by byte, straight from the specification, so tests do not trust the writer.</summary>
internal static class StBytes
{
    /// <summary>8-byte LE length, the header (padded with spaces to a multiple of 8 when asked), then the data.</summary>
    public static byte[] Image(string header, byte[]? data = null, bool pad = true) =>
        Image(Encoding.UTF8.GetBytes(header), data, pad);

    public static byte[] Image(byte[] header, byte[]? data = null, bool pad = true)
    {
        data ??= [];
        var padded = pad ? (header.Length + 7) / 8 * 8 : header.Length;
        var bytes = new byte[8 + padded + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        header.CopyTo(bytes, 8);
        bytes.AsSpan(8 + header.Length, padded - header.Length).Fill((byte)' ');
        data.CopyTo(bytes, 8 + padded);
        return bytes;
    }

    /// <summary>A file whose length prefix says <paramref name="declared"/>, followed by whatever bytes are given.</summary>
    public static byte[] Declared(ulong declared, byte[] rest)
    {
        var bytes = new byte[8 + rest.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declared);
        rest.CopyTo(bytes, 8);
        return bytes;
    }

    public static byte[] Sequence(int length)
    {
        var b = new byte[length];
        for (var i = 0; i < length; i++)
        {
            b[i] = (byte)(i * 7 + 3);
        }
        return b;
    }

    /// <summary>One F32 entry.</summary>
    public static string F32(string name, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";
}
