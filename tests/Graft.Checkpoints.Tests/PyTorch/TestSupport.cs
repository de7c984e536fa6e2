using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Graft.Checkpoints.PyTorch;

namespace Graft.Checkpoints.Tests.PyTorch;

/// <summary>Locates the repository's tests/fixtures folder from the test binaries.</summary>
internal static class Fixtures
{
    public static string Root => Graft.TestSupport.RepoPaths.Fixtures();

    public static string PyTorch => Path.Combine(Root, "pytorch");
}

/// <summary>A GLOBAL opcode in <see cref="Pickle.Assemble"/>.</summary>
internal sealed record G(string Module, string Name);

/// <summary>Builds pickles byte by byte, so each hostile test states exactly the bytes it feeds the reader.</summary>
internal static class Pickle
{
    /// <summary>
    /// chars are opcodes, bytes raw bytes, ints/longs BININT (LONG1 beyond 32 bits), strings BINUNICODE,
    /// <see cref="G"/> a GLOBAL, byte arrays raw bytes.
    /// </summary>
    public static byte[] Assemble(params object[] parts)
    {
        var o = new List<byte>();
        foreach (var p in parts)
        {
            switch (p)
            {
                case char c:
                    o.Add((byte)c);
                    break;
                case byte b:
                    o.Add(b);
                    break;
                case int or long:
                    var v = Convert.ToInt64(p, System.Globalization.CultureInfo.InvariantCulture);
                    if (v is >= int.MinValue and <= int.MaxValue)
                    {
                        o.Add((byte)'J');
                        o.AddRange(BitConverter.GetBytes((int)v));
                    }
                    else
                    {
                        o.Add(0x8a);
                        o.Add(8);
                        o.AddRange(BitConverter.GetBytes(v));
                    }
                    break;
                case string s:
                    var bytes = Encoding.UTF8.GetBytes(s);
                    o.Add((byte)'X');
                    o.AddRange(BitConverter.GetBytes(bytes.Length));
                    o.AddRange(bytes);
                    break;
                case G g:
                    o.Add((byte)'c');
                    o.AddRange(Encoding.ASCII.GetBytes(g.Module + "\n" + g.Name + "\n"));
                    break;
                case byte[] raw:
                    o.AddRange(raw);
                    break;
                default:
                    throw new ArgumentException("cannot assemble " + p);
            }
        }
        return [.. o];
    }

    public static readonly G OrderedDict = new("collections", "OrderedDict");
    public static readonly G Rebuild = new("torch._utils", "_rebuild_tensor_v2");
    public static readonly G FloatStorage = new("torch", "FloatStorage");

    /// <summary>Parts for <c>(a, b, …)</c> built with MARK … TUPLE.</summary>
    public static object[] Tuple(params object[] items) => ['(', .. items, 't'];

    /// <summary>
    /// A state dict {"w": tensor} whose tensor is a view (offset, size, stride) on float storage "0" of
    /// <paramref name="numel"/> elements, with the persistent id replaceable.
    /// </summary>
    public static byte[] OneTensor(long numel, long offset, long[] size, long[] stride, object[]? persistentId = null) => Assemble(
    [
        (byte)0x80, (byte)2, OrderedDict, ')', 'R',
        '(', "w", Rebuild,
        '(',
            .. persistentId ?? Tuple("storage", FloatStorage, "0", "cpu", numel), 'Q',
            offset, .. Tuple(size.Cast<object>().ToArray()), .. Tuple(stride.Cast<object>().ToArray()), (byte)0x89,
            OrderedDict, ')', 'R',
        't', 'R',
        'u', '.',
    ]);

    /// <summary>Writes a zip the way torch lays it out, or with the entries given.</summary>
    public static void WriteZip(string path, IEnumerable<(string Name, byte[] Data)> entries, bool compress = false)
    {
        using var fs = new FileStream(path, FileMode.Create);
        using var zip = new ZipArchive(fs, ZipArchiveMode.Create);
        foreach (var (name, data) in entries)
        {
            var e = zip.CreateEntry(name, compress ? CompressionLevel.Optimal : CompressionLevel.NoCompression);
            using var s = e.Open();
            s.Write(data);
        }
    }

    /// <summary>A checkpoint zip with one data.pkl, the given storage records, and version/byteorder.</summary>
    public static void WriteCheckpoint(string path, byte[] dataPkl, IEnumerable<(string Key, byte[] Data)> storages, string version = "3", string? byteorder = "little", string root = "archive")
    {
        var entries = new List<(string, byte[])> { ($"{root}/data.pkl", dataPkl) };
        if (byteorder is not null)
        {
            entries.Add(($"{root}/byteorder", Encoding.ASCII.GetBytes(byteorder)));
        }
        entries.AddRange(storages.Select(s => ($"{root}/data/{s.Key}", s.Data)));
        entries.Add(($"{root}/version", Encoding.ASCII.GetBytes(version + "\n")));
        WriteZip(path, entries);
    }
}

internal static class Hashing
{
    public static string Sha256(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static string Sha256Of(ICheckpointReader reader, TensorInfo t)
    {
        var bytes = new byte[t.ByteLength];
        reader.ReadBytes(t, bytes);
        return Sha256(bytes);
    }

    public static string Sha256ViaCopyTo(ICheckpointReader reader, TensorInfo t)
    {
        using var ms = new MemoryStream();
        reader.CopyTo(t, ms);
        return Sha256(ms.ToArray());
    }
}

internal static class Expect
{
    /// <summary>Asserts that opening fails with <paramref name="kind"/> and a message naming the file.</summary>
    public static CheckpointFormatException Fails(string path, CheckpointErrorKind kind, string? mentions = null)
    {
        var e = Assert.Throws<CheckpointFormatException>(() => PyTorchReader.Open(path).Dispose());
        Assert.Equal(kind, e.Kind);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Equal(path, e.FilePath);
        if (mentions is not null)
        {
            Assert.Contains(mentions, e.Message, StringComparison.Ordinal);
        }
        return e;
    }
}
