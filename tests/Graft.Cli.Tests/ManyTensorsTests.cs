using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Graft.Cli.Tests;

/// <summary>
/// A header of many small tensors must cost memory in proportion to the header, not a table library's per-cell
/// objects: 200,000 zero-element tensors (a 12 MB header) once took a gigabyte in <c>graft inspect</c>. The command runs
/// in a child process whose managed heap is capped at 4 × the header bytes + 64 MB (DOTNET_GCHeapHardLimit); past it
/// the runtime throws OutOfMemoryException and the command fails. A command that opens two files (diff, plan,
/// transfer) gets both headers counted. Plans and reports once held a few objects per tensor and built their JSON as
/// one string: <c>plan --json</c> and <c>transfer</c> failed here.
/// </summary>
public sealed class ManyTensorsTests : IDisposable
{
    private const int Count = 100_000;

    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>A safetensors file of <paramref name="count"/> zero-element F32 tensors; returns its header length.</summary>
    internal static long WriteZeroElementTensors(string path, int count, string layer = "layer")
    {
        var json = new StringBuilder("{");
        for (int i = 0; i < count; i++)
        {
            json.Append(i == 0 ? "" : ",").Append('"').Append(layer).Append(i).Append(".weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}");
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

    /// <summary>
    /// Runs the CLI with its heap capped, keeping only the size and the last 64 KiB of its standard output (a JSON
    /// report of 100,000 tensors is 60 MB: the test must not hold what the command must not hold).
    /// </summary>
    private static (int Code, long Bytes, string Tail, string Err) RunCappedTail(long heapLimit, params string[] args)
    {
        using var p = CliHarness.StartProcess(new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = "0x" + heapLimit.ToString("x", CultureInfo.InvariantCulture) }, args);
        var stderr = p.StandardError.ReadToEndAsync();
        var tail = new StringBuilder();
        long bytes = 0;
        var reading = Task.Run(() =>
        {
            var buffer = new char[1 << 16];
            int n;
            while ((n = p.StandardOutput.Read(buffer, 0, buffer.Length)) > 0)
            {
                bytes += n;
                tail.Append(buffer, 0, n);
                if (tail.Length > 2 * buffer.Length)
                {
                    tail.Remove(0, tail.Length - buffer.Length);
                }
            }
        });
        if (!reading.Wait(TimeSpan.FromMinutes(2)) || !p.WaitForExit(TimeSpan.FromMinutes(1)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"graft {string.Join(' ', args)} did not finish within 2 minutes");
        }
        return (p.ExitCode, bytes, tail.ToString(), stderr.Result);
    }

    [Theory]
    [InlineData("plan")]
    [InlineData("plan-json")]
    [InlineData("transfer")]
    [InlineData("transfer-json")]
    public void PlanAndTransfer_100kZeroElementTensors_FitInFourTimesBothHeadersPlus64MB(string command)
    {
        var path = _h.PathOf("many.safetensors");
        long header = WriteZeroElementTensors(path, Count);
        var output = _h.PathOf("out.safetensors");
        var report = _h.PathOf("report.json");
        string[] args = command switch
        {
            "plan" => ["plan", path, "--into", path],
            "plan-json" => ["plan", path, "--into", path, "--json"],
            "transfer" => ["transfer", path, "--into", path, "--out", output, "--report", report],
            _ => ["transfer", path, "--into", path, "--out", output, "--json"],
        };
        var (code, bytes, tail, stderr) = RunCappedTail(4 * (2 * header) + (64L << 20), args);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        switch (command)
        {
            case "plan":
                Assert.Contains($"{Count} target tensors: {Count} copied", tail);
                break;
            case "plan-json":
                // The JSON ends with what --strict would refuse: nothing.
                Assert.Matches("\"strictViolations\": \\[\\]\\s*}\\s*$", tail);
                Assert.True(bytes > 30 * Count, $"{bytes} characters of JSON for {Count} tensors");
                break;
            case "transfer":
                Assert.Contains($"{Count} target tensors: {Count} copied", tail);
                using (var json = JsonDocument.Parse(File.ReadAllBytes(report)))
                {
                    Assert.Equal(Count, json.RootElement.GetProperty("targets").GetArrayLength());
                    var sources = json.RootElement.GetProperty("sources");
                    Assert.Equal(Count, sources.GetArrayLength());
                    Assert.Equal($"layer{Count - 1}.weight", sources[Count - 1].GetProperty("usedBy")[0].GetString());
                }
                break;
            default:
                Assert.Contains($"\"name\": \"layer{Count - 1}.weight\"", tail);
                Assert.True(bytes > 50 * Count, $"{bytes} characters of JSON for {Count} tensors");
                break;
        }
        if (command.StartsWith("transfer", StringComparison.Ordinal))
        {
            using var written = Graft.Checkpoints.CheckpointFile.Open(output);
            Assert.Equal(Count, written.Tensors.Count);
        }
    }

    /// <summary>
    /// Two files with no name in common: every tensor is its own difference, every target is kept and every source
    /// unused, so each per-tensor list is as long as it gets (the diff once held an object per layer, and the
    /// structural matcher a note and a sentence per guess).
    /// </summary>
    [Theory]
    [InlineData("diff")]
    [InlineData("diff-json")]
    [InlineData("plan-strict")]
    [InlineData("plan-structural")]
    public void NothingInCommon_100kZeroElementTensorsEach_FitsInFourTimesBothHeadersPlus64MB(string command)
    {
        var a = _h.PathOf("a.safetensors");
        var b = _h.PathOf("b.safetensors");
        long headers = WriteZeroElementTensors(a, Count) + WriteZeroElementTensors(b, Count, layer: "block");
        string[] args = command switch
        {
            "diff" => ["diff", a, b],
            "diff-json" => ["diff", a, b, "--json"],
            "plan-strict" => ["plan", a, "--into", b, "--strict"],
            _ => ["plan", a, "--into", b, "--structural", "--json"],
        };
        var (code, _, tail, stderr) = RunCappedTail(4 * headers + (64L << 20), args);
        switch (command)
        {
            case "diff":
                Assert.True(code == 0, $"exit {code}: {stderr}");
                Assert.Contains($"{Count} only in A, {Count} only in B", tail);
                break;
            case "diff-json":
                Assert.True(code == 0, $"exit {code}: {stderr}");
                Assert.Contains($"\"name\": \"block{Count - 1}.weight\"", tail);
                break;
            case "plan-strict":
                Assert.True(code == 5, $"exit {code}: {stderr}");
                Assert.Contains($"--strict: {2 * Count} tensor(s) not fully transferred", stderr);
                break;
            default:
                Assert.True(code == 0, $"exit {code}: {stderr}");
                // Every block is guessed from a layer: the 50 first guesses are noted one by one, the rest counted.
                Assert.Contains($"structural guesses: {Count - 50} more", tail);
                // The plan's JSON is the transfer's report: it ends with the sources (each used by its guessed block) and the notes.
                Assert.Contains($"\"block{Count - 1}.weight\"", tail);
                break;
        }
    }

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
