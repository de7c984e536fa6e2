namespace Graft.Checkpoints.PyTorch;

/// <summary>The zip CRC-32 (reflected polynomial 0xEDB88320); PyTorch's loader checks it on every record.</summary>
internal static class Crc32
{
    private static readonly uint[] Table = MakeTable();

    /// <summary>Continues a CRC over more bytes; start with 0.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> bytes)
    {
        var c = ~crc;
        foreach (var b in bytes)
        {
            c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        }
        return ~c;
    }

    private static uint[] MakeTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }
            t[n] = c;
        }
        return t;
    }
}
