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

/// <summary>
/// A test checked by the reference implementation (Debian's python3-torch): outside CI it is skipped, saying why, when
/// no Python imports torch; in CI (<c>CI=true</c>, as <c>.ci/run</c> runs) it runs and fails, since CI installs torch.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class PythonTorchFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no interpreter imports torch and this is not CI.</summary>
    public PythonTorchFactAttribute() => Skip = PythonTorch.SkipReason("torch");
}

/// <summary>As <see cref="PythonTorchFactAttribute"/>, for Debian's python3-onnx.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class PythonOnnxFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no interpreter imports onnx and this is not CI.</summary>
    public PythonOnnxFactAttribute() => Skip = PythonTorch.SkipReason("onnx");
}

/// <summary>Finds and runs a Python interpreter that has torch (or another module the tests check against).</summary>
internal static class PythonTorch
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<string?>> Found = new(StringComparer.Ordinal);

    public static string? Interpreter => InterpreterWith("torch");

    /// <summary>The first of $GRAFT_PYTHON, python3 and /usr/bin/python3 that can import <paramref name="module"/>, or null.</summary>
    public static string? InterpreterWith(string module) => Found.GetOrAdd(module, m => new Lazy<string?>(() => Probe(m))).Value;

    /// <summary>CI runs with <c>CI=true</c> (<c>.ci/run</c> sets it): there a missing reference implementation is a failure.</summary>
    public static bool InCI => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    private static string Missing(string module) =>
        $"No Python with {module}: tried $GRAFT_PYTHON, python3 and /usr/bin/python3 (`import {module}` failed). " +
        "Run tests/fixtures/install-python-torch.sh (as root) to install Debian's python3-torch, python3-torchvision and python3-onnx";

    /// <summary>The skip reason of a test that needs <paramref name="module"/>: null when it is there, or in CI (where the test then fails).</summary>
    public static string? SkipReason(string module) =>
        InCI || InterpreterWith(module) is not null ? null : Missing(module) + ". Skipped only outside CI (CI is not \"true\"); in CI this test fails instead.";

    /// <summary>The interpreter that imports <paramref name="module"/>; fails the test (in CI, where it is not skipped) when there is none.</summary>
    public static string Required(string module) =>
        InterpreterWith(module) ?? throw new Xunit.Sdk.XunitException(Missing(module) + ". CI (CI=true) must run this check against the reference implementation, so it fails instead of skipping.");

    /// <summary>Runs <c>INTERPRETER -c SCRIPT</c> (the process runner the ONNX export fixtures use).</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(string interpreter, string script, TimeSpan timeout) =>
        Graft.TestSupport.OnnxExports.Run(interpreter, ["-c", script], timeout);

    private static string? Probe(string module)
    {
        var candidates = new[] { Environment.GetEnvironmentVariable("GRAFT_PYTHON"), "python3", "/usr/bin/python3" };
        foreach (var c in candidates)
        {
            if (string.IsNullOrEmpty(c))
            {
                continue;
            }
            try
            {
                if (Run(c, "import " + module, TimeSpan.FromSeconds(120)).ExitCode == 0)
                {
                    return c;
                }
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // Not installed.
            }
        }
        return null;
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
