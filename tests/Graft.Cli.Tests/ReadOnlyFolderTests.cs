using Graft.Checkpoints;

namespace Graft.Cli.Tests;

/// <summary>
/// A fact that runs <c>graft</c> as a user the file system's permissions bind: the current user when it is not root,
/// else nobody (uid and gid 65534) through <c>setpriv</c> (root passes every permission check, so a read-only folder
/// would not be read-only to it). Skipped, with the exact reason, where neither works.
/// </summary>
public sealed class UnprivilegedFactAttribute : FactAttribute
{
    public UnprivilegedFactAttribute()
    {
        Skip = ReadOnlyFolderTests.WhyNotRunnable();
    }
}

/// <summary>
/// Outputs into a read-only folder (a report, OUT itself) fail before anything is committed: OUT absent, or the previous
/// OUT as it was; no temporary left.
/// </summary>
public sealed class ReadOnlyFolderTests : IDisposable
{
    /// <summary>The user the child runs as when the tests run as root: nobody on most Linux systems.</summary>
    private const int Nobody = 65534;

    private readonly CliHarness _h = new();

    public void Dispose()
    {
        if (!OperatingSystem.IsWindows())
        {
            // Writable again, so that the folder can be deleted.
            foreach (var d in Directory.GetDirectories(_h.Dir))
            {
                File.SetUnixFileMode(d, (UnixFileMode)0b111_111_111);
            }
        }
        _h.Dispose();
    }

    /// <summary>Why the child cannot be run as a user that permissions bind here; null when it can.</summary>
    internal static string? WhyNotRunnable()
    {
        if (OperatingSystem.IsWindows())
        {
            return "needs Unix permission bits (a folder made read-only with chmod)";
        }
        if (!Environment.IsPrivilegedProcess)
        {
            return null;
        }
        if (!OperatingSystem.IsLinux() || Which("setpriv") is null)
        {
            return "running as root, where a read-only folder is writable, and setpriv (util-linux, to run graft as nobody) is not on PATH";
        }
        var dll = Path.Combine(AppContext.BaseDirectory, "Graft.Cli.dll");
        var dotnet = Which("dotnet");
        if (dotnet is null)
        {
            return "dotnet is not on PATH, so the child cannot be started";
        }
        foreach (var path in new[] { dll, new FileInfo(dotnet).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? dotnet, Path.GetTempPath() })
        {
            if (UnreadableByOthers(path) is { } blocked)
            {
                return $"running as root, and nobody (uid {Nobody}) cannot reach {blocked} (its mode lacks the bits for others), so graft cannot run as nobody; the read-only folder case needs a user that permissions bind";
            }
        }
        return null;
    }

    /// <summary>The first folder on the way to <paramref name="path"/> that others cannot enter, or the file itself when they cannot read it; null if none.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static string? UnreadableByOthers(string path)
    {
        var full = Path.GetFullPath(path);
        for (var dir = Path.GetDirectoryName(full); dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (!File.GetUnixFileMode(dir).HasFlag(UnixFileMode.OtherExecute))
            {
                return dir;
            }
        }
        return File.Exists(full) && !File.GetUnixFileMode(full).HasFlag(UnixFileMode.OtherRead) ? full : null;
    }

    private static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);

    /// <summary>Runs graft with <paramref name="args"/> (paths relative to the test's folder) as the unprivileged user.</summary>
    private (int Code, string Out, string Err) Graft(params string[] args)
    {
        var words = string.Join(' ', args.Select(a => "'" + a + "'"));
        var asUser = Environment.IsPrivilegedProcess ? $"setpriv --reuid={Nobody} --regid={Nobody} --clear-groups " : "";
        return CliHarness.RunShell(_h.Dir, $"exec {asUser}env HOME=\"$PWD/home\" DOTNET_CLI_HOME=\"$PWD/home\" DOTNET_NOLOGO=1 dotnet \"$0\" {words}");
    }

    private static TensorPayload F32(string name, params long[] shape)
    {
        var s = new Shape(shape);
        return TensorPayload.FromBytes(name, DType.F32, s, Enumerable.Range(0, (int)s.ElementCount * 4).Select(i => (byte)(i % 61)).ToArray());
    }

    private void Checkpoint(string name, long inputs = 3) =>
        CheckpointFile.Write(_h.PathOf(name), [F32("c1.weight", 8, inputs, 3, 3), F32("c1.bias", 8), F32("fc.weight", 4, 8)]);

    [UnprivilegedFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Outputs_IntoAReadOnlyFolder_FailWithOutputAbsentOrPrevious()
    {
        Checkpoint("src.safetensors");
        Checkpoint("tpl.safetensors", inputs: 1);
        var everyone = (UnixFileMode)0b111_111_111;
        foreach (var d in new[] { "w", "home", "ro" })
        {
            Directory.CreateDirectory(_h.PathOf(d));
            File.SetUnixFileMode(_h.PathOf(d), everyone);
        }
        byte[] previous = [1, 2, 3];
        File.WriteAllBytes(_h.PathOf("ro/out.safetensors"), previous);
        File.SetUnixFileMode(_h.PathOf("ro"), (UnixFileMode)0b101_101_101);

        // The same user writes into a writable folder: the setup works, so the failures below are the folder's doing.
        var ok = Graft("transfer", "src.safetensors", "--into", "tpl.safetensors", "--out", "w/ok.safetensors", "--report", "w/ok.json");
        Assert.True(ok.Code == 0, ok.Err);
        Assert.True(File.Exists(_h.PathOf("w/ok.json")));

        var cases = new[]
        {
            ("w/out.safetensors", "ro/r.json", new[] { "transfer", "src.safetensors", "--into", "tpl.safetensors", "--out", "w/out.safetensors", "--report", "ro/r.json" }),
            ("ro/out.safetensors", "ro/out.safetensors", new[] { "transfer", "src.safetensors", "--into", "tpl.safetensors", "--out", "ro/out.safetensors" }),
            ("ro/out.safetensors", "ro/out.safetensors", new[] { "convert", "src.safetensors", "ro/out.safetensors" }),
        };
        foreach (var (output, blocked, args) in cases)
        {
            var (code, stdout, err) = Graft(args);
            Assert.True(code == ExitCodes.FileError, $"graft {string.Join(' ', args)}: exit {code}\n{stdout}\n{err}");
            Assert.Contains($"{blocked}: cannot be written: the folder {_h.PathOf("ro")} does not let this user create files in it", err, StringComparison.Ordinal);
            Assert.False(File.Exists(_h.PathOf("ro/r.json")));
            if (output.StartsWith("ro/", StringComparison.Ordinal))
            {
                Assert.Equal(previous, File.ReadAllBytes(_h.PathOf(output)));
            }
            else
            {
                Assert.False(File.Exists(_h.PathOf(output)), string.Join(' ', args));
            }
        }
        // A previous OUT in a writable folder stays as it was when the report cannot be written.
        File.WriteAllBytes(_h.PathOf("w/out.safetensors"), previous);
        var again = Graft("transfer", "src.safetensors", "--into", "tpl.safetensors", "--out", "w/out.safetensors", "--report", "ro/r.json");
        Assert.Equal(ExitCodes.FileError, again.Code);
        Assert.Equal(previous, File.ReadAllBytes(_h.PathOf("w/out.safetensors")));
        Assert.Empty(Directory.GetFiles(_h.PathOf("w"), ".*"));
        Assert.Equal(["out.safetensors"], Directory.GetFiles(_h.PathOf("ro")).Select(Path.GetFileName));
    }
}
