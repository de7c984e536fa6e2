using System.Diagnostics;

namespace Graft.TestSupport;

/// <summary>A fact that needs Unix special files (<c>mkfifo</c>, device nodes); skipped with the reason elsewhere.</summary>
public sealed class UnixOnlyFactAttribute : FactAttribute
{
    public UnixOnlyFactAttribute()
    {
        if (OperatingSystem.IsWindows())
        {
            Skip = "needs Unix special files (mkfifo, /dev/null, hard and symbolic links); not on Windows";
        }
    }
}

/// <summary>
/// FIFOs for tests, and a guard so a test that opens one can never hang: an open of a FIFO with no writer blocks
/// forever, so the action runs on another thread and, past the timeout, the test fails after unblocking it (a writer
/// opens and closes the FIFO, which ends the blocked open with an empty read).
/// </summary>
internal static class SpecialFiles
{
    /// <summary>Makes a FIFO at <paramref name="path"/> with the system's <c>mkfifo</c>.</summary>
    public static string MakeFifo(string path)
    {
        var psi = new ProcessStartInfo("mkfifo") { UseShellExecute = false };
        psi.ArgumentList.Add(path);
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"mkfifo {path} failed");
        return path;
    }

    /// <summary>Makes a hard link <paramref name="link"/> to <paramref name="target"/> with the system's <c>ln</c>.</summary>
    public static string HardLink(string target, string link)
    {
        var psi = new ProcessStartInfo("ln") { UseShellExecute = false };
        psi.ArgumentList.Add(target);
        psi.ArgumentList.Add(link);
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"ln {target} {link} failed");
        return link;
    }

    /// <summary>
    /// Runs <paramref name="action"/> and returns its result, or fails the test when it has not finished within
    /// <paramref name="seconds"/> (after unblocking every FIFO in <paramref name="fifos"/>).
    /// </summary>
    public static T WithinSeconds<T>(int seconds, Func<T> action, params string[] fifos)
    {
        var task = Task.Factory.StartNew(action, TaskCreationOptions.LongRunning);
        if (task.Wait(TimeSpan.FromSeconds(seconds)))
        {
            return task.Result;
        }
        foreach (var fifo in fifos)
        {
            // A writer's open succeeds now that a reader waits; closing it gives that reader end-of-file.
            var unblock = Task.Run(() => new FileStream(fifo, FileMode.Open, FileAccess.Write).Dispose());
            unblock.Wait(TimeSpan.FromSeconds(5));
        }
        task.Wait(TimeSpan.FromSeconds(5));
        Assert.Fail($"blocked for more than {seconds} s (opened a FIFO?)");
        return default!;
    }
}

/// <summary>A theory that needs Unix links and processes (<c>ln</c>, symbolic links); skipped with the reason elsewhere.</summary>
public sealed class UnixOnlyTheoryAttribute : TheoryAttribute
{
    public UnixOnlyTheoryAttribute()
    {
        if (OperatingSystem.IsWindows())
        {
            Skip = "needs Unix hard and symbolic links; not on Windows";
        }
    }
}
