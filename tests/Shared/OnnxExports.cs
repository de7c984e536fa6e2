using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;

namespace Graft.TestSupport;

/// <summary>
/// Real <c>torch.onnx.export</c> outputs of torchvision ResNet-18 and MobileNetV2 (too big to commit), made once by
/// <c>tests/fixtures/make_onnx_exports.py</c> and cached in <c>tests/fixtures/obj/onnx-exports/&lt;script hash&gt;/</c>:
/// a changed script makes a new folder, a finished folder is never rewritten, and concurrent test processes each
/// write into their own temporary folder and move it into place (the first one wins). See tests/fixtures/README.md.
/// </summary>
internal static class OnnxExports
{
    private static readonly Lazy<string?> s_python = new(() => PythonTorch.InterpreterWith("torch, torchvision, onnx"));
    private static readonly Lazy<string> s_folder = new(Make);

    /// <summary>Why export tests are skipped on this machine, or null when they can run.</summary>
    public static string? SkipReason => s_python.Value is null
        ? "No Python with torch, torchvision and onnx: tried $GRAFT_PYTHON, python3 and /usr/bin/python3. Debian: apt-get install python3-torch python3-torchvision python3-onnx (tests/fixtures/install-python-torch.sh)."
        : null;

    /// <summary>The folder holding the exports and their manifest.json (made on first use; throws with the script's error).</summary>
    public static string Folder => s_folder.Value;

    /// <summary>A file of the export folder, e.g. <c>resnet18_fresh_preserve.onnx</c>.</summary>
    public static string File(string name) => Path.Combine(Folder, name);

    /// <summary>The interpreter that made the exports (also has onnx, for checking outputs).</summary>
    public static string Python => s_python.Value ?? throw new InvalidOperationException(SkipReason);

    private static string Make()
    {
        var script = Path.Combine(RepoPaths.Fixtures(), "make_onnx_exports.py");
        var hash = Convert.ToHexStringLower(SHA256.HashData(System.IO.File.ReadAllBytes(script)))[..12];
        var root = Path.Combine(RepoPaths.Fixtures(), "obj", "onnx-exports");
        var folder = Path.Combine(root, hash);
        if (System.IO.File.Exists(Path.Combine(folder, "manifest.json")))
        {
            return folder;
        }
        Directory.CreateDirectory(root);
        var temp = Path.Combine(root, $"{hash}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var (code, _, stderr) = Run(Python, [script, temp], TimeSpan.FromMinutes(15));
        if (code != 0)
        {
            throw new InvalidOperationException($"make_onnx_exports.py failed ({code}): {stderr}");
        }
        try
        {
            Directory.Move(temp, folder);
        }
        catch (IOException) when (System.IO.File.Exists(Path.Combine(folder, "manifest.json")))
        {
            // Another test process finished first: use its folder.
            Directory.Delete(temp, recursive: true);
        }
        return folder;
    }

    /// <summary>Runs <paramref name="interpreter"/> with arguments; returns the exit code and both streams.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(string interpreter, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(interpreter) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            return (-1, "", "timed out");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}

/// <summary>A fact that needs the ONNX exports: skipped, saying why, when no Python can make them.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class OnnxExportsFactAttribute : FactAttribute
{
    public OnnxExportsFactAttribute()
    {
        if (OnnxExports.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>
/// Files of NuGet packages the test project restores for their content (ML.NET's ResNet-18 ONNX model); the paths
/// come from the build (<c>GeneratePathProperty</c>) as assembly metadata.
/// </summary>
internal static class TestPackages
{
    /// <summary>ML.NET's ImageNet ResNet-18 (CNTK export, opset 8) from <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c>.</summary>
    public static string? MlNetResNet18 => Existing("MlNetResNet18Onnx");

    /// <summary>Why the ML.NET model tests are skipped, or null.</summary>
    public static string? MlNetResNet18SkipReason => MlNetResNet18 is null
        ? "Microsoft.ML.DnnImageFeaturizer.ResNet18 was not restored (no NuGet access?); its ResNet18.onnx is missing."
        : null;

    private static string? Existing(string key)
    {
        var path = typeof(TestPackages).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == key)?.Value;
        return path is not null && System.IO.File.Exists(path) ? path : null;
    }
}

/// <summary>A fact that needs ML.NET's ResNet-18: skipped, saying why, when the package could not be restored.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class MlNetResNet18FactAttribute : FactAttribute
{
    public MlNetResNet18FactAttribute()
    {
        if (TestPackages.MlNetResNet18SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
