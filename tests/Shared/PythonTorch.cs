namespace Graft.TestSupport;

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

    /// <summary>
    /// The first of $GRAFT_PYTHON, python3 and /usr/bin/python3 that can import <paramref name="module"/> (or several,
    /// <c>torch, torchvision, onnx</c>), or null. The one place the test projects look for Python.
    /// </summary>
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
        OnnxExports.Run(interpreter, ["-c", script], timeout);

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
