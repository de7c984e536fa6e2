using System.Diagnostics;
using System.Security.Cryptography;
using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Cli.Tests;

/// <summary>Runs graft commands in-process and gives each test its own folder.</summary>
public sealed class CliHarness : IDisposable
{
    public CliHarness()
    {
        Dir = Path.Combine(Path.GetTempPath(), "graft-cli-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Dir);
    }

    public string Dir { get; }

    public string PathOf(string name) => Path.Combine(Dir, name);

    public (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = GraftApp.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>
    /// Starts the real <c>graft</c> (the built Graft.Cli.dll) in a child process, for what in-process runs cannot show:
    /// loaded libraries, a kill, process-wide state such as the numerics guard. <paramref name="env"/> adds to or
    /// overrides the inherited environment.
    /// </summary>
    public static Process StartProcess(IReadOnlyDictionary<string, string>? env, params string[] args) =>
        StartDll(Path.Combine(AppContext.BaseDirectory, "Graft.Cli.dll"), env, args);

    /// <summary>
    /// Starts <c>dotnet <paramref name="dll"/> args…</c> with redirected streams (the samples run this way), in this
    /// process's environment plus <paramref name="env"/>; an empty value there removes the variable.
    /// </summary>
    public static Process StartDll(string dll, IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            if (v.Length == 0)
            {
                psi.Environment.Remove(k); // an empty value unsets a variable the test process has
            }
            else
            {
                psi.Environment[k] = v;
            }
        }
        return Process.Start(psi)!;
    }

    /// <summary>
    /// Runs <see cref="StartProcess"/> to the end; returns the exit code and both streams. A child still running after
    /// two minutes is killed and the test fails: a test never hangs.
    /// </summary>
    public static (int Code, string Out, string Err) RunProcess(IReadOnlyDictionary<string, string>? env, params string[] args) =>
        RunDll(Path.Combine(AppContext.BaseDirectory, "Graft.Cli.dll"), TimeSpan.FromMinutes(2), env, args);

    /// <summary>
    /// Runs <see cref="StartDll"/> to the end; returns the exit code and both streams. A child still running after
    /// <paramref name="timeout"/> is killed and the test fails.
    /// </summary>
    public static (int Code, string Out, string Err) RunDll(string dll, TimeSpan timeout, IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        using var p = StartDll(dll, env, args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileNameWithoutExtension(dll)} {string.Join(' ', args)} did not finish within {timeout.TotalMinutes:0.#} minutes");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>
    /// Runs <c>/bin/sh -c <paramref name="script"/></c> in <paramref name="folder"/> with <c>$0</c> the built Graft.Cli.dll
    /// (so the script runs <c>dotnet "$0" …</c>), for what a .NET string cannot pass: arguments whose bytes are not UTF-8
    /// (made with <c>printf</c>), a changed user, limits. Returns the script's exit code and both streams; killed after
    /// <paramref name="timeout"/> (default two minutes), failing the test.
    /// </summary>
    public static (int Code, string Out, string Err) RunShell(string folder, string script, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = folder };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Graft.Cli.dll"));
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        var limit = timeout ?? TimeSpan.FromMinutes(2);
        if (!p.WaitForExit(limit))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"sh -c '{script}' did not finish within {limit.TotalMinutes:0.#} minutes");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Writes a module's state dict as a checkpoint (format from the extension).</summary>
    public string Save(nn.Module module, string name)
    {
        var path = PathOf(name);
        CheckpointFile.Write(path, module.state_dict().Select(kv => TensorBridge.ToPayload(kv.Key, kv.Value)));
        return path;
    }

    public static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>Files in the folder, so tests can assert nothing (not even a temp file) was left behind.</summary>
    public string[] Files() => Directory.GetFiles(Dir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    public void Dispose()
    {
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The repository root (the folder with Graft.slnx), for fixtures.</summary>
    public static string RepoRoot() => Graft.TestSupport.RepoPaths.Root;
}
