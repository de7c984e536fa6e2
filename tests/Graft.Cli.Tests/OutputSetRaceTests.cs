using System.Diagnostics;
using Graft.Checkpoints;
using Graft.TestSupport;

namespace Graft.Cli.Tests;

/// <summary>
/// Issue 21's second outputs and races, through the real process: a report or picture reached through a linked
/// folder or a hard link is still an input, and two <c>graft convert</c> processes writing one sharded output leave
/// it complete (the loser fails cleanly, the index never names a missing shard).
/// </summary>
public sealed class OutputSetRaceTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private static TensorPayload U8(string name, int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return TensorPayload.FromBytes(name, DType.U8, new Shape(length), bytes);
    }

    private Dictionary<string, string> Hashes(string folder) =>
        Directory.GetFiles(folder).ToDictionary(f => f, CliHarness.Hash);

    /// <summary>s/model.safetensors.index.json over three shards, and a template beside it.</summary>
    private (string Index, string Template) Inputs()
    {
        var src = _h.PathOf("src.safetensors");
        CheckpointFile.Write(src, [U8("a", 300, 1), U8("b", 300, 2), U8("c", 300, 3)]);
        Directory.CreateDirectory(_h.PathOf("s"));
        var index = _h.PathOf("s/model.safetensors.index.json");
        var (code, _, err) = _h.Run("convert", src, index, "--shard-size", "300");
        Assert.True(code == 0, err);
        var template = _h.PathOf("tpl.safetensors");
        CheckpointFile.Write(template, [U8("a", 300, 4), U8("b", 300, 5), U8("c", 300, 6)]);
        return (index, template);
    }

    [UnixOnlyTheory]
    [InlineData("report-linked-folder")]
    [InlineData("report-hard-link")]
    [InlineData("picture-linked-folder")]
    public void SecondOutputReachingAnInputThroughALink_Exit2_InputsIntact(string how)
    {
        var (index, template) = Inputs();
        Directory.CreateSymbolicLink(_h.PathOf("l"), _h.PathOf("s"));
        var before = Hashes(_h.PathOf("s"));
        var templateBefore = CliHarness.Hash(template);
        var output = _h.PathOf("out.safetensors");
        string[] args;
        switch (how)
        {
            case "report-linked-folder":
                args = ["transfer", index, "--into", template, "--out", output, "--report", _h.PathOf("l/model-00002-of-00003.safetensors")];
                break;
            case "report-hard-link":
                var hard = _h.PathOf("r.json");
                using (var ln = Process.Start("ln", [template, hard]))
                {
                    ln.WaitForExit();
                    Assert.Equal(0, ln.ExitCode);
                }
                args = ["transfer", index, "--into", template, "--out", output, "--report", hard];
                break;
            default:
                args = ["show", index, "--tensor", "a", "--out", _h.PathOf("l/model-00001-of-00003.safetensors")];
                break;
        }
        var (code, _, err) = _h.Run(args);
        Assert.True(code == 2, $"exit {code}: {err}");
        Assert.Equal(before, Hashes(_h.PathOf("s")));
        Assert.Equal(templateBefore, CliHarness.Hash(template));
        Assert.False(File.Exists(output));
    }

    /// <summary>
    /// Two processes convert into one sharded index at the same moment, three rounds: each ends 0, or 3 saying another
    /// graft process is writing it; afterwards the index opens, names only shards that exist, and reads back the
    /// source's bytes.
    /// </summary>
    [UnixOnlyFact]
    public void TwoProcessesConvertIntoOneShardedIndex_LoserFailsCleanly_IndexComplete()
    {
        var src = _h.PathOf("big.safetensors");
        CheckpointFile.Write(src, Enumerable.Range(0, 8).Select(i => U8($"t{i}", 1 << 20, i)));
        Directory.CreateDirectory(_h.PathOf("d"));
        var index = _h.PathOf("d/model.safetensors.index.json");
        for (var round = 0; round < 3; round++)
        {
            using var a = CliHarness.StartProcess(null, "convert", src, index, "--shard-size", "1MiB");
            using var b = CliHarness.StartProcess(null, "convert", src, index, "--shard-size", "1MiB");
            var errA = a.StandardError.ReadToEndAsync();
            var errB = b.StandardError.ReadToEndAsync();
            Assert.True(a.WaitForExit(120_000) && b.WaitForExit(120_000), "a convert did not finish within 2 minutes");
            foreach (var (code, err) in new[] { (a.ExitCode, errA.Result), (b.ExitCode, errB.Result) })
            {
                Assert.True(code == 0 || (code == 3 && err.Contains("another graft process", StringComparison.Ordinal)), $"round {round}: exit {code}: {err}");
            }
            Assert.True(a.ExitCode == 0 || b.ExitCode == 0, $"round {round}: neither convert succeeded");
            using var written = CheckpointFile.Open(index);
            using var source = CheckpointFile.Open(src);
            Assert.Equal(source.Tensors.Select(t => t.Name), written.Tensors.Select(t => t.Name));
            foreach (var t in written.Tensors)
            {
                var expected = new byte[t.ByteLength];
                var actual = new byte[t.ByteLength];
                source.ReadBytes(source.Tensors.Single(s => s.Name == t.Name), expected);
                written.ReadBytes(t, actual);
                Assert.Equal(expected, actual);
            }
            Assert.Empty(Directory.GetFiles(_h.PathOf("d"), ".*.tmp"));
        }
    }
}
