using System.Diagnostics;
using Graft.Checkpoints;
using Graft.TestSupport;

namespace Graft.Cli.Tests;

/// <summary>
/// Every file a command writes beside OUT (a report, a picture, shards, ONNX data) is one output set with OUT: checked
/// against every file the inputs read before anything is written, and committed with OUT or not at all.
/// </summary>
public sealed class OutputSetCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private static TensorPayload F32(string name, params long[] shape)
    {
        var s = new Shape(shape);
        return TensorPayload.FromBytes(name, DType.F32, s, Enumerable.Range(0, (int)s.ElementCount * 4).Select(i => (byte)(i % 61)).ToArray());
    }

    private string Checkpoint(string path, long inputs = 3)
    {
        CheckpointFile.Write(path, [F32("c1.weight", 8, inputs, 3, 3), F32("c1.bias", 8), F32("fc.weight", 4, 8)]);
        return path;
    }

    /// <summary>s/model.safetensors.index.json over three shards.</summary>
    private string Sharded()
    {
        Directory.CreateDirectory(_h.PathOf("s"));
        var index = _h.PathOf("s/model.safetensors.index.json");
        var (code, _, err) = _h.Run("convert", Checkpoint(_h.PathOf("src.safetensors")), index, "--shard-size", "100");
        Assert.True(code == 0, err);
        return index;
    }

    private Dictionary<string, string> Hashes(string folder) =>
        Directory.GetFiles(folder).ToDictionary(f => f, CliHarness.Hash);

    [Fact]
    public void Transfer_ReportNamesASourceShard_Exit2_NothingWritten()
    {
        var index = Sharded();
        var template = Checkpoint(_h.PathOf("tpl.safetensors"), inputs: 1);
        var before = Hashes(_h.PathOf("s"));
        var (code, _, err) = _h.Run("transfer", index, "--into", template, "--out", _h.PathOf("out.safetensors"), "--report", _h.PathOf("s/model-00001-of-00003.safetensors"));
        Assert.Equal(2, code);
        Assert.Contains("never modifies its inputs", err, StringComparison.Ordinal);
        Assert.Equal(before, Hashes(_h.PathOf("s")));
        Assert.False(File.Exists(_h.PathOf("out.safetensors")));
    }

    [Fact]
    public void Transfer_ReportIsTheOutput_Exit2()
    {
        var source = Checkpoint(_h.PathOf("src.safetensors"));
        var template = Checkpoint(_h.PathOf("tpl.safetensors"), inputs: 1);
        var output = _h.PathOf("out.safetensors");
        var (code, _, err) = _h.Run("transfer", source, "--into", template, "--out", output, "--report", output);
        Assert.Equal(2, code);
        Assert.Contains("same file as the", err, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Transfer_ReportCannotBeWritten_NoNewOutput_ExistingOutputUntouched()
    {
        var source = Checkpoint(_h.PathOf("src.safetensors"));
        var template = Checkpoint(_h.PathOf("tpl.safetensors"), inputs: 1);
        var output = _h.PathOf("out.safetensors");
        foreach (var report in new[] { _h.PathOf("nodir/r.json"), _h.Dir })
        {
            var (code, _, _) = _h.Run("transfer", source, "--into", template, "--out", output, "--report", report);
            Assert.InRange(code, 2, 3);
            Assert.False(File.Exists(output), report);
        }
        File.WriteAllBytes(output, [1, 2, 3]);
        var (code2, _, _) = _h.Run("transfer", source, "--into", template, "--out", output, "--report", _h.PathOf("nodir/r.json"));
        Assert.Equal(3, code2);
        Assert.Equal([1, 2, 3], File.ReadAllBytes(output));
        Assert.Empty(Directory.GetFiles(_h.Dir, ".*.tmp"));
    }

    [Fact]
    public void Transfer_ReportAndOutput_CommittedTogether()
    {
        var source = Checkpoint(_h.PathOf("src.safetensors"));
        var template = Checkpoint(_h.PathOf("tpl.safetensors"), inputs: 1);
        var (code, _, err) = _h.Run("transfer", source, "--into", template, "--out", _h.PathOf("out.safetensors"), "--report", _h.PathOf("r.json"));
        Assert.True(code == 0, err);
        Assert.True(File.Exists(_h.PathOf("out.safetensors")));
        Assert.Contains("\"summary\"", File.ReadAllText(_h.PathOf("r.json")), StringComparison.OrdinalIgnoreCase);
        Assert.Empty(Directory.GetFiles(_h.Dir, ".*"));
    }

    [Fact]
    public void Show_OutNamesAShardOfTheCheckpoint_Exit2_ShardIntact()
    {
        var index = Sharded();
        var before = Hashes(_h.PathOf("s"));
        var (code, _, _) = _h.Run("show", index, "--tensor", "c1.weight", "--out", _h.PathOf("s/model-00002-of-00003.safetensors"));
        Assert.Equal(2, code);
        Assert.Equal(before, Hashes(_h.PathOf("s")));
    }

    [UnixOnlyFact]
    public void Convert_Sigterm_RemovesItsTemporaries()
    {
        // ~64 MB: still being written when the signal comes.
        var rng = new Random(3);
        var big = new byte[16 << 20];
        var src = _h.PathOf("big.safetensors");
        CheckpointFile.Write(src, Enumerable.Range(0, 4).Select(i =>
        {
            rng.NextBytes(big);
            return TensorPayload.FromBytes($"t{i}", DType.U8, new Shape(big.Length), (byte[])big.Clone());
        }));
        var outDir = Directory.CreateDirectory(_h.PathOf("o")).FullName;
        int signalled = 0;
        for (var attempt = 0; attempt < 5 && signalled == 0; attempt++)
        {
            using var p = CliHarness.StartProcess(null, "convert", src, Path.Combine(outDir, "out.pt"));
            var clock = Stopwatch.StartNew();
            while (!p.HasExited && clock.Elapsed < TimeSpan.FromSeconds(60) && Directory.GetFiles(outDir, ".*.tmp").Length == 0)
            {
                Thread.Sleep(5);
            }
            if (!p.HasExited)
            {
                using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                {
                    kill.WaitForExit();
                }
                signalled++;
            }
            Assert.True(p.WaitForExit(60_000), "graft did not end after SIGTERM");
            if (p.ExitCode == 0)
            {
                signalled = 0; // finished before the signal landed: try again
                File.Delete(Path.Combine(outDir, "out.pt"));
                continue;
            }
            Assert.Empty(Directory.GetFiles(outDir, ".*.tmp"));
            Assert.False(File.Exists(Path.Combine(outDir, "out.pt")));
        }
        Assert.True(signalled > 0, "every convert finished before it could be signalled");
    }

    [UnixOnlyFact]
    public void Convert_StandardOutputOnAFullDisk_Exit3_NoOutput()
    {
        if (!File.Exists("/dev/full"))
        {
            return;
        }
        var src = Checkpoint(_h.PathOf("src.safetensors"));
        var output = _h.PathOf("out.pt");
        var dll = Path.Combine(AppContext.BaseDirectory, "Graft.Cli.dll");
        var psi = new ProcessStartInfo("sh") { RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec dotnet \"$0\" convert \"$1\" \"$2\" > /dev/full");
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add(src);
        psi.ArgumentList.Add(output);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(120_000));
        Assert.Equal(3, p.ExitCode);
        Assert.False(File.Exists(output), err);
        Assert.Empty(Directory.GetFiles(_h.Dir, ".*.tmp"));
    }

    [Fact]
    public void Convert_OutputNameNotUtf8_RefusedNotRewritten()
    {
        var src = Checkpoint(_h.PathOf("src.safetensors"));
        var (code, _, err) = _h.Run("convert", src, _h.PathOf("bad\uFFFDname.safetensors"));
        Assert.Equal(2, code);
        Assert.Contains("U+FFFD", err, StringComparison.Ordinal);
        Assert.Equal(["src.safetensors"], Directory.GetFiles(_h.Dir).Select(Path.GetFileName));
    }

    [UnixOnlyFact]
    public void Convert_MoreShardsThanFileDescriptors_Succeeds()
    {
        // 400 shards under `ulimit -n 128`: shards are opened to check their headers, closed, and reopened when read.
        Directory.CreateDirectory(_h.PathOf("many"));
        var index = _h.PathOf("many/model.safetensors.index.json");
        Graft.Checkpoints.Sharded.ShardedSafetensorsWriter.Write(index,
            Enumerable.Range(0, 400).Select(i => TensorPayload.FromBytes($"t{i:D3}", DType.F32, new Shape(1), BitConverter.GetBytes((float)i))), null, maxShardBytes: 4);
        var output = _h.PathOf("all.safetensors");
        var psi = new ProcessStartInfo("sh") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("ulimit -n 128 && exec dotnet \"$0\" convert \"$1\" \"$2\"");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Graft.Cli.dll"));
        psi.ArgumentList.Add(index);
        psi.ArgumentList.Add(output);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var err = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(120_000));
        Assert.True(p.ExitCode == 0, err);
        using var r = CheckpointFile.Open(output);
        Assert.Equal(400, r.Tensors.Count);
        var b = new byte[4];
        r.ReadBytes(r.Tensors[399], b);
        Assert.Equal(399f, BitConverter.ToSingle(b));
    }
}
