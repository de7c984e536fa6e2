using System.Diagnostics;
using Graft.Checkpoints;

namespace Graft.Cli.Tests;

/// <summary>
/// Kills <c>graft transfer</c> with SIGKILL at random moments: afterwards OUT is absent or a complete file (never a
/// partial one), and the inputs are byte-identical. Runs the real command in a child process.
/// </summary>
public sealed class CrashSafetyTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>A checkpoint big enough (~48 MB) that a transfer is still writing when it is killed.</summary>
    private (string Source, string Template) MakeInputs()
    {
        var rng = new Random(5);
        TensorPayload Big(string name, params long[] shape)
        {
            var s = new Shape(shape);
            var bytes = new byte[s.ElementCount * 4];
            rng.NextBytes(bytes);
            for (int i = 3; i < bytes.Length; i += 4)
            {
                bytes[i] &= 0x3F; // finite floats
            }
            return TensorPayload.FromBytes(name, DType.F32, s, bytes);
        }
        var src = _h.PathOf("src.safetensors");
        var tpl = _h.PathOf("tpl.safetensors");
        CheckpointFile.Write(src, [Big("stem.weight", 64, 3, 7, 7), .. Enumerable.Range(0, 12).Select(i => Big($"block{i}.weight", 256, 256, 3, 3 - 2 * (i % 2)))]);
        CheckpointFile.Write(tpl, [Big("stem.weight", 64, 1, 7, 7), .. Enumerable.Range(0, 12).Select(i => Big($"block{i}.weight", 256, 256, 3, 3 - 2 * (i % 2)))]);
        return (src, tpl);
    }

    private static Process Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Graft.Cli.dll"));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        return Process.Start(psi)!;
    }

    [Fact]
    public void Transfer_KilledAtRandomMoments_LeavesNoPartialOutputAndInputsUntouched()
    {
        var (src, tpl) = MakeInputs();
        var srcHash = CliHarness.Hash(src);
        var tplHash = CliHarness.Hash(tpl);
        var reference = _h.PathOf("reference.safetensors");
        using (var p = Start("transfer", src, "--into", tpl, "--out", reference))
        {
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
        }
        var completeHash = CliHarness.Hash(reference);
        var stopwatch = Stopwatch.StartNew();
        using (var p = Start("transfer", src, "--into", tpl, "--out", _h.PathOf("timing.safetensors")))
        {
            p.WaitForExit();
        }
        int fullRun = (int)stopwatch.ElapsedMilliseconds;

        var rng = new Random(17);
        int killedMidway = 0;
        for (int round = 0; round < 8; round++)
        {
            var outPath = _h.PathOf($"out{round}.safetensors");
            if (round % 2 == 1)
            {
                File.Copy(reference, outPath); // a previous complete output must survive a killed run
            }
            using var p = Start("transfer", src, "--into", tpl, "--out", outPath);
            Thread.Sleep(rng.Next(fullRun / 4, fullRun));
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true); // SIGKILL
                killedMidway++;
            }
            p.WaitForExit();
            Assert.True(!File.Exists(outPath) || CliHarness.Hash(outPath) == completeHash, $"round {round}: partial output at {outPath}");
            if (round % 2 == 1)
            {
                Assert.True(File.Exists(outPath), $"round {round}: the previous output was lost");
            }
        }
        Assert.Equal(srcHash, CliHarness.Hash(src));
        Assert.Equal(tplHash, CliHarness.Hash(tpl));
        Assert.True(killedMidway >= 4, $"only {killedMidway} of 8 runs were killed before finishing; the test did not exercise a crash");
    }

    [RootOnlyFact]
    public void Transfer_DiskFull_ClearMessageExit3AndNothingLeft()
    {
        var mount = _h.PathOf("tiny");
        Directory.CreateDirectory(mount);
        using (var m = Process.Start("mount", ["-t", "tmpfs", "-o", "size=512k", "tmpfs", mount]))
        {
            m.WaitForExit();
            Assert.True(m.ExitCode == 0, "mounting a 512 KiB tmpfs failed although running as root");
        }
        try
        {
            var (src, tpl) = MakeInputs();
            var outPath = Path.Combine(mount, "out.safetensors");
            var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath);
            Assert.Equal(3, code);
            Assert.Contains("space", stderr, StringComparison.OrdinalIgnoreCase);
            Assert.Empty(Directory.GetFileSystemEntries(mount));
        }
        finally
        {
            using var u = Process.Start("umount", [mount]);
            u.WaitForExit();
        }
    }
}

/// <summary>A fact that needs root (to mount a tiny tmpfs); elsewhere it is skipped with that reason.</summary>
public sealed class RootOnlyFactAttribute : FactAttribute
{
    public RootOnlyFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            Skip = "needs root on Linux to mount a 512 KiB tmpfs and fill it; disk-full behaviour not checked here";
        }
    }
}
