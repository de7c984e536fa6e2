using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Graft.Cli.Tests;

/// <summary>
/// A header of many small tensors must cost memory in proportion to the header, not a table library's per-cell
/// objects: 200,000 zero-element tensors (a 12 MB header) once took a gigabyte in <c>graft inspect</c>. The command runs
/// in a child process whose managed heap is capped at 4 × the header bytes + 64 MB (DOTNET_GCHeapHardLimit); past it
/// the runtime throws OutOfMemoryException and the command fails.
/// </summary>
public sealed class ManyTensorsTests : IDisposable
{
    private const int Count = 100_000;

    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>A safetensors file of <paramref name="count"/> zero-element F32 tensors; returns its header length.</summary>
    internal static long WriteZeroElementTensors(string path, int count)
    {
        var json = new StringBuilder("{");
        for (int i = 0; i < count; i++)
        {
            json.Append(i == 0 ? "" : ",").Append("\"layer").Append(i).Append(".weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}");
        }
        json.Append('}');
        while (json.Length % 8 != 0)
        {
            json.Append(' ');
        }
        var header = Encoding.UTF8.GetBytes(json.ToString());
        var bytes = new byte[8 + header.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        return header.Length;
    }

    private static (int Code, string Out, string Err) RunCapped(long heapLimit, params string[] args) =>
        CliHarness.RunProcess(new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = "0x" + heapLimit.ToString("x", CultureInfo.InvariantCulture) }, args);

    [Theory]
    [InlineData("inspect")]
    [InlineData("inspect-json")]
    [InlineData("diff")]
    [InlineData("convert")]
    public void Command_100kZeroElementTensors_FitsInFourTimesTheHeaderPlus64MB(string command)
    {
        var path = _h.PathOf("many.safetensors");
        long header = WriteZeroElementTensors(path, Count);
        string[] args = command switch
        {
            "inspect" => ["inspect", path],
            "inspect-json" => ["inspect", path, "--json"],
            "diff" => ["diff", path, path],
            _ => ["convert", path, _h.PathOf("copy.safetensors")],
        };
        // diff opens two files: each one's header counts.
        long headers = command == "diff" ? 2 * header : header;
        var (code, stdout, stderr) = RunCapped(4 * headers + (64L << 20), args);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        if (command == "inspect")
        {
            Assert.Contains($"{Count} tensors", stdout);
            Assert.Contains("layer99999.weight", stdout);
        }
    }
}
