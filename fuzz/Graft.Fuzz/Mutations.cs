using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Graft.Fuzz;

/// <summary>One mutation: a new input made from an old one, and a short description of what changed.</summary>
internal delegate byte[] Mutation(byte[] input, Random rng, List<string> log);

/// <summary>
/// Seeded, structure-aware mutations. The generic ones work on any bytes; a format may add its own through
/// <see cref="ByFormat"/> (one line per format). A format without an entry is fuzzed with the generic ones only.
/// </summary>
internal static class Mutations
{
    /// <summary>Format-specific mutations, by <see cref="Checkpoints.ICheckpointFormat.Name"/>.</summary>
    public static IReadOnlyDictionary<string, Mutation[]> ByFormat { get; } = new Dictionary<string, Mutation[]>(StringComparer.Ordinal)
    {
        ["safetensors"] = [SafetensorsMutations.HeaderLength, SafetensorsMutations.JsonToken, SafetensorsMutations.JsonToken, SafetensorsMutations.JsonToken],
        ["pytorch"] = [ZipMutations.Field, ZipMutations.Field, PickleMutations.Opcode, PickleMutations.Operand, PickleMutations.Operand],
    };

    /// <summary>Mutations that know nothing about the format.</summary>
    public static Mutation[] Generic { get; } = [BitFlip, InterestingByte, InterestingInteger, Truncate, DeleteChunk, DuplicateChunk, InsertRandom];

    /// <summary>Byte values that break parsers more often than random ones.</summary>
    public static readonly byte[] InterestingBytes = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE];

    /// <summary>Integers that sit on the edges of signed, unsigned, 32- and 64-bit ranges.</summary>
    public static readonly long[] InterestingIntegers =
    [
        0, 1, -1, 2, 7, 8, 16, 255, 256, 0x7FFF, 0xFFFF, 0x10000, int.MaxValue, int.MinValue, uint.MaxValue, 1L << 32,
        long.MaxValue, long.MinValue, long.MaxValue / 4 + 1, 100_000_000, 100_000_001,
    ];

    /// <summary>Applies one to three mutations, half of them format-specific when the format has its own.</summary>
    public static byte[] Mutate(string format, byte[] seed, Random rng, List<string> log)
    {
        var data = seed;
        var rounds = 1 + rng.Next(3);
        ByFormat.TryGetValue(format, out var specific);
        for (var i = 0; i < rounds; i++)
        {
            var pool = specific is not null && rng.Next(2) == 0 ? specific : Generic;
            data = pool[rng.Next(pool.Length)](data, rng, log);
        }
        return data;
    }

    private static byte[] BitFlip(byte[] input, Random rng, List<string> log)
    {
        if (input.Length == 0)
        {
            return input;
        }
        var o = (byte[])input.Clone();
        var n = 1 + rng.Next(4);
        for (var i = 0; i < n; i++)
        {
            var at = rng.Next(o.Length);
            var bit = rng.Next(8);
            o[at] ^= (byte)(1 << bit);
            log.Add($"flip bit {bit} of byte {at}");
        }
        return o;
    }

    private static byte[] InterestingByte(byte[] input, Random rng, List<string> log)
    {
        if (input.Length == 0)
        {
            return input;
        }
        var o = (byte[])input.Clone();
        var at = rng.Next(o.Length);
        o[at] = InterestingBytes[rng.Next(InterestingBytes.Length)];
        log.Add($"byte {at} = 0x{o[at]:X2}");
        return o;
    }

    private static byte[] InterestingInteger(byte[] input, Random rng, List<string> log)
    {
        var width = new[] { 2, 4, 8 }[rng.Next(3)];
        if (input.Length < width)
        {
            return input;
        }
        var o = (byte[])input.Clone();
        var at = rng.Next(o.Length - width + 1);
        var v = InterestingIntegers[rng.Next(InterestingIntegers.Length)];
        WriteInteger(o.AsSpan(at), width, v);
        log.Add($"{width}-byte integer at {at} = {v}");
        return o;
    }

    private static byte[] Truncate(byte[] input, Random rng, List<string> log)
    {
        if (input.Length == 0)
        {
            return input;
        }
        // Cut near the end half the time (a partly written file), anywhere otherwise.
        var keep = rng.Next(2) == 0 ? Math.Max(0, input.Length - 1 - rng.Next(Math.Min(input.Length, 64))) : rng.Next(input.Length);
        log.Add($"truncate to {keep} bytes");
        return input[..keep];
    }

    private static byte[] DeleteChunk(byte[] input, Random rng, List<string> log)
    {
        if (input.Length < 2)
        {
            return input;
        }
        var at = rng.Next(input.Length);
        var n = 1 + rng.Next(Math.Min(64, input.Length - at));
        log.Add($"delete {n} bytes at {at}");
        return [.. input.AsSpan(0, at), .. input.AsSpan(at + n)];
    }

    private static byte[] DuplicateChunk(byte[] input, Random rng, List<string> log)
    {
        if (input.Length == 0)
        {
            return input;
        }
        var from = rng.Next(input.Length);
        var n = 1 + rng.Next(Math.Min(64, input.Length - from));
        var to = rng.Next(input.Length + 1);
        log.Add($"copy {n} bytes from {from} to {to}");
        return [.. input.AsSpan(0, to), .. input.AsSpan(from, n), .. input.AsSpan(to)];
    }

    private static byte[] InsertRandom(byte[] input, Random rng, List<string> log)
    {
        var to = rng.Next(input.Length + 1);
        var bytes = new byte[1 + rng.Next(16)];
        rng.NextBytes(bytes);
        log.Add($"insert {bytes.Length} random bytes at {to}");
        return [.. input.AsSpan(0, to), .. bytes, .. input.AsSpan(to)];
    }

    /// <summary>Writes the low <paramref name="width"/> bytes of <paramref name="value"/>, little-endian.</summary>
    public static void WriteInteger(Span<byte> at, int width, long value)
    {
        switch (width)
        {
            case 1: at[0] = (byte)value; break;
            case 2: BinaryPrimitives.WriteInt16LittleEndian(at, (short)value); break;
            case 4: BinaryPrimitives.WriteInt32LittleEndian(at, (int)value); break;
            default: BinaryPrimitives.WriteInt64LittleEndian(at, value); break;
        }
    }

    /// <summary>A value near <paramref name="current"/> or an edge value, for length and offset fields.</summary>
    public static long Nudge(long current, long fileLength, Random rng) => rng.Next(4) switch
    {
        0 => current + rng.Next(-9, 10),
        1 => fileLength + rng.Next(-9, 10),
        2 => current * 2 + 1,
        _ => InterestingIntegers[rng.Next(InterestingIntegers.Length)],
    };
}

/// <summary>Mutations that know the safetensors layout: the 8-byte header length and the JSON tokens.</summary>
internal static class SafetensorsMutations
{
    private static readonly string[] Numbers =
    [
        "0", "1", "-1", "2", "3", "4", "7", "8", "1.5", "1e3", "-0", "4294967296", "9223372036854775807", "9223372036854775808",
        "18446744073709551615", "18446744073709551616", "99999999999999999999999", "100000000", "1E400", "0.0",
    ];

    private static readonly string[] Strings =
    [
        "\"F32\"", "\"F64\"", "\"BOOL\"", "\"U8\"", "\"I64\"", "\"BF16\"", "\"F8_E4M3\"", "\"F4\"", "\"\"", "\"__metadata__\"",
        "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"a\"", "\"\\u0000\"", "\"\\ud800\"", "\"x\\\"y\"",
        "\"\\u001b]0;owned\\u0007\\u001b[2J\"", "\"\u001b[31m\"", "\"a\\nb\\u202e\"", "\"" + new string('x', 10_000) + "\"", "\"" + new string('é', 200) + "\"",
    ];

    private static readonly string[] Fragments = ["{", "}", "[", "]", ",", ":", "null", "true", "[]", "{}", "[0,0]", "\"k\":", " "];

    /// <summary>Sets the header length to a value near the real one or an edge value.</summary>
    public static byte[] HeaderLength(byte[] input, Random rng, List<string> log)
    {
        if (input.Length < 8)
        {
            return input;
        }
        var o = (byte[])input.Clone();
        var current = BinaryPrimitives.ReadInt64LittleEndian(o);
        var v = Mutations.Nudge(current, o.Length, rng);
        BinaryPrimitives.WriteInt64LittleEndian(o, v);
        log.Add($"header length {current} -> {v}");
        return o;
    }

    /// <summary>Replaces, deletes, duplicates or swaps a JSON token, then (usually) fixes the header length.</summary>
    public static byte[] JsonToken(byte[] input, Random rng, List<string> log)
    {
        if (input.Length < 8)
        {
            return input;
        }
        var n = BinaryPrimitives.ReadInt64LittleEndian(input);
        if (n < 2 || n > input.Length - 8)
        {
            return input;
        }
        var header = Encoding.UTF8.GetString(input, 8, (int)n);
        var tokens = Tokenize(header);
        if (tokens.Count == 0)
        {
            return input;
        }
        var t = tokens[rng.Next(tokens.Count)];
        var text = header.Substring(t.Start, t.Length);
        string replacement;
        switch (rng.Next(7))
        {
            case 0:
                replacement = Numbers[rng.Next(Numbers.Length)];
                break;
            case 1:
                replacement = Strings[rng.Next(Strings.Length)];
                break;
            case 2:
                replacement = "";
                break;
            case 3:
                replacement = text + (rng.Next(2) == 0 ? "," : "") + text;
                break;
            case 4:
                replacement = Fragments[rng.Next(Fragments.Length)];
                break;
            case 5:
                var other = tokens[rng.Next(tokens.Count)];
                replacement = header.Substring(other.Start, other.Length);
                break;
            default:
                var depth = 1 + rng.Next(200);
                replacement = new string('[', depth) + text + new string(']', rng.Next(2) == 0 ? depth : rng.Next(depth));
                break;
        }
        log.Add($"json token '{Clip(text)}' at {t.Start} -> '{Clip(replacement)}'");
        var edited = Encoding.UTF8.GetBytes(header[..t.Start] + replacement + header[(t.Start + t.Length)..]);
        var o = new byte[8 + edited.Length + (input.Length - 8 - (int)n)];
        edited.CopyTo(o, 8);
        input.AsSpan(8 + (int)n).CopyTo(o.AsSpan(8 + edited.Length));
        // Mostly keep the prefix consistent, so that the mutation reaches the checks after the header length.
        var prefix = rng.Next(8) == 0 ? n : edited.Length;
        BinaryPrimitives.WriteInt64LittleEndian(o, prefix);
        return o;
    }

    private static string Clip(string s) => s.Length <= 24 ? s : s[..24] + "…";

    /// <summary>Start and length of each JSON token: strings, numbers, literals and punctuation.</summary>
    internal static List<(int Start, int Length)> Tokenize(string json)
    {
        var tokens = new List<(int, int)>();
        var i = 0;
        while (i < json.Length)
        {
            var c = json[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }
            var start = i;
            if (c == '"')
            {
                i++;
                while (i < json.Length && json[i] != '"')
                {
                    i += json[i] == '\\' ? 2 : 1;
                }
                i = Math.Min(json.Length, i + 1);
            }
            else if (c is '-' or '+' or '.' || char.IsAsciiLetterOrDigit(c))
            {
                while (i < json.Length && (json[i] is '-' or '+' or '.' || char.IsAsciiLetterOrDigit(json[i])))
                {
                    i++;
                }
            }
            else
            {
                i++;
            }
            tokens.Add((start, i - start));
        }
        return tokens;
    }
}

/// <summary>Mutations of the fields of a zip's local headers, central directory and end record (PyTorch's container).</summary>
internal static class ZipMutations
{
    // (offset, width) of the fields worth lying about.
    private static readonly (int Offset, int Width, string Name)[] LocalFields =
    [
        (4, 2, "version"), (6, 2, "flags"), (8, 2, "method"), (14, 4, "crc"), (18, 4, "compressed size"), (22, 4, "size"),
        (26, 2, "name length"), (28, 2, "extra length"),
    ];

    private static readonly (int Offset, int Width, string Name)[] CentralFields =
    [
        (8, 2, "flags"), (10, 2, "method"), (16, 4, "crc"), (20, 4, "compressed size"), (24, 4, "size"), (28, 2, "name length"),
        (30, 2, "extra length"), (32, 2, "comment length"), (34, 2, "disk"), (42, 4, "local header offset"),
    ];

    private static readonly (int Offset, int Width, string Name)[] EndFields =
    [
        (4, 2, "disk"), (6, 2, "cd disk"), (8, 2, "entries on disk"), (10, 2, "entries"), (12, 4, "cd size"), (16, 4, "cd offset"),
        (20, 2, "comment length"),
    ];

    /// <summary>Sets one header field to an edge value or a value near its own.</summary>
    public static byte[] Field(byte[] input, Random rng, List<string> log)
    {
        var records = new List<(int At, (int Offset, int Width, string Name)[] Fields, string Kind)>();
        for (var i = 0; i + 4 <= input.Length; i++)
        {
            if (input[i] != (byte)'P' || input[i + 1] != (byte)'K')
            {
                continue;
            }
            var sig = BinaryPrimitives.ReadUInt32LittleEndian(input.AsSpan(i));
            if (sig == 0x04034b50 && i + 30 <= input.Length)
            {
                records.Add((i, LocalFields, "local"));
            }
            else if (sig == 0x02014b50 && i + 46 <= input.Length)
            {
                records.Add((i, CentralFields, "central"));
            }
            else if (sig == 0x06054b50 && i + 22 <= input.Length)
            {
                records.Add((i, EndFields, "end"));
            }
        }
        if (records.Count == 0)
        {
            return input;
        }
        var (at, fields, kind) = records[rng.Next(records.Count)];
        var f = fields[rng.Next(fields.Length)];
        var o = (byte[])input.Clone();
        var span = o.AsSpan(at + f.Offset, f.Width);
        long current = f.Width == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(span) : BinaryPrimitives.ReadUInt32LittleEndian(span);
        var v = Mutations.Nudge(current, o.Length, rng);
        Mutations.WriteInteger(span, f.Width, v);
        log.Add($"zip {kind} header at {at}: {f.Name} {current} -> {v}");
        return o;
    }
}

/// <summary>
/// Mutations of the pickle inside a PyTorch checkpoint: opcode substitutions and operand edits of the same length, so
/// the zip stays well-formed; the entry's CRC-32 is recomputed so that the mutation reaches the unpickler.
/// </summary>
internal static class PickleMutations
{
    // Opcodes grouped by the operand bytes that follow them, so a substitution within a group keeps the stream aligned.
    private static readonly byte[] NoArgument = "()]}.012NtsueaRQlbd"u8.ToArray().Concat(new byte[] { 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x93, 0x94, 0x81 }).ToArray();
    private static readonly byte[] OneByte = "Khq"u8.ToArray().Concat(new byte[] { 0x80, 0x82 }).ToArray();
    private static readonly byte[] FourBytes = "Jjr"u8.ToArray().Concat(new byte[] { 0x84 }).ToArray();

    /// <summary>Replaces an opcode with another of the same operand length, or with an opcode of no operand.</summary>
    public static byte[] Opcode(byte[] input, Random rng, List<string> log) => Edit(input, rng, log, (pickle, ops) =>
    {
        var op = ops[rng.Next(ops.Count)];
        var code = pickle[op.At];
        byte[] group = OneByte.Contains(code) ? OneByte : FourBytes.Contains(code) ? FourBytes : NoArgument;
        if (rng.Next(4) == 0)
        {
            group = NoArgument;
        }
        var replacement = group[rng.Next(group.Length)];
        pickle[op.At] = replacement;
        log.Add($"pickle opcode at {op.At}: 0x{code:X2} -> 0x{replacement:X2}");
    });

    /// <summary>Sets an integer operand (a size, stride, offset, memo index or string length) to an edge value.</summary>
    public static byte[] Operand(byte[] input, Random rng, List<string> log) => Edit(input, rng, log, (pickle, ops) =>
    {
        var withOperand = ops.Where(o => o.OperandLength > 0).ToList();
        if (withOperand.Count == 0)
        {
            return;
        }
        var op = withOperand[rng.Next(withOperand.Count)];
        var width = Math.Min(op.OperandLength, 8);
        var v = Mutations.InterestingIntegers[rng.Next(Mutations.InterestingIntegers.Length)];
        if (rng.Next(3) == 0)
        {
            v = rng.Next(-3, 40);
        }
        var at = op.At + 1;
        // Length-prefixed operands: edit the length field; fixed ones: the value.
        Mutations.WriteInteger(pickle.AsSpan(at), width is 1 or 2 or 4 or 8 ? width : 1, v);
        log.Add($"pickle operand of 0x{pickle[op.At]:X2} at {op.At} = {v}");
    });

    private static byte[] Edit(byte[] input, Random rng, List<string> log, Action<byte[], List<Op>> edit)
    {
        var region = FindPickle(input);
        if (region is null)
        {
            return input;
        }
        var (start, length, crcAt) = region.Value;
        var pickle = input.AsSpan(start, length).ToArray();
        var ops = Walk(pickle);
        if (ops.Count == 0)
        {
            return input;
        }
        edit(pickle, ops);
        var o = (byte[])input.Clone();
        pickle.CopyTo(o, start);
        if (crcAt.Count > 0)
        {
            var crc = Crc32(pickle);
            foreach (var c in crcAt)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(o.AsSpan(c), crc);
            }
        }
        return o;
    }

    /// <summary>The pickle's bytes in the file and where its CRC is recorded (none for the legacy layout).</summary>
    private static (int Start, int Length, List<int> CrcAt)? FindPickle(byte[] file)
    {
        if (file.Length > 0 && file[0] == 0x80)
        {
            return (0, Math.Min(file.Length, 1 << 16), []);
        }
        // Zip: the central entry whose name ends in /data.pkl, and its local header.
        for (var i = 0; i + 46 <= file.Length; i++)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(i)) != 0x02014b50)
            {
                continue;
            }
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(i + 28));
            if (i + 46 + nameLength > file.Length || !Encoding.ASCII.GetString(file, i + 46, nameLength).EndsWith("/data.pkl", StringComparison.Ordinal))
            {
                continue;
            }
            var size = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(i + 20));
            var local = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(i + 42));
            if (local + 30L > file.Length || BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan((int)local)) != 0x04034b50)
            {
                return null;
            }
            var data = local + 30L + BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan((int)local + 26)) + BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan((int)local + 28));
            if (data + size > file.Length)
            {
                return null;
            }
            return ((int)data, (int)size, [(int)local + 14, i + 16]);
        }
        return null;
    }

    internal readonly record struct Op(int At, int OperandLength);

    /// <summary>Opcode boundaries of the pickle(s) in <paramref name="p"/>, until an opcode the walker does not know.</summary>
    internal static List<Op> Walk(byte[] p)
    {
        var ops = new List<Op>();
        var i = 0;
        while (i < p.Length)
        {
            var code = p[i];
            int fixedLength;
            var prefix = 0;
            switch (code)
            {
                case var c when NoArgument.Contains(c): fixedLength = 0; break;
                case (byte)'K' or (byte)'h' or (byte)'q' or 0x80 or 0x82: fixedLength = 1; break;
                case (byte)'M' or 0x83: fixedLength = 2; break;
                case (byte)'J' or (byte)'j' or (byte)'r' or 0x84: fixedLength = 4; break;
                case (byte)'G' or 0x95: fixedLength = 8; break;
                case 0x8a or (byte)'U' or (byte)'C' or 0x8c: fixedLength = 1; prefix = 1; break;
                case 0x8b or (byte)'X' or (byte)'T' or (byte)'B': fixedLength = 4; prefix = 4; break;
                case 0x8d or 0x8e: fixedLength = 8; prefix = 8; break;
                case (byte)'c':
                    var first = Array.IndexOf(p, (byte)'\n', i + 1);
                    var second = first < 0 ? -1 : Array.IndexOf(p, (byte)'\n', first + 1);
                    if (second < 0)
                    {
                        return ops;
                    }
                    ops.Add(new Op(i, 0));
                    i = second + 1;
                    continue;
                default:
                    return ops;
            }
            if (i + 1 + fixedLength > p.Length)
            {
                return ops;
            }
            long extra = prefix switch
            {
                1 => p[i + 1],
                4 => BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(i + 1)),
                8 => (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(p.AsSpan(i + 1)), int.MaxValue),
                _ => 0,
            };
            ops.Add(new Op(i, fixedLength));
            var next = i + 1L + fixedLength + extra;
            if (code == 0x95)
            {
                next = i + 9; // FRAME's operand is the frame length, not bytes to skip
            }
            if (next > p.Length)
            {
                return ops;
            }
            i = (int)next;
        }
        return ops;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }
        return ~crc;
    }

    /// <summary>For messages: a byte as a pickle opcode character when printable.</summary>
    internal static string Show(byte code) => code is >= 0x20 and < 0x7F ? ((char)code).ToString() : "0x" + code.ToString("X2", CultureInfo.InvariantCulture);
}
