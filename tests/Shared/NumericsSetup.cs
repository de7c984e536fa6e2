using System.Runtime.CompilerServices;
using Graft.Numerics;

namespace Graft.TestSupport;

/// <summary>
/// What an application that trains TorchSharp models does at start-up, and what these tests do: run Graft's numerics guard
/// once, before any test computes a convolution of its own (on hosts whose oneDNN kernels miscompute, the guard turns
/// mkldnn off for the process). Graft's own entry points guard themselves; the tests also train and compare networks
/// directly. Its memory (see NumericsGuard.MemoryFile) goes to a temporary folder, not the user's. A guard that refuses is not thrown here: the tests that compute then fail on their own numbers.
/// </summary>
internal static class NumericsSetup
{
#pragma warning disable CA2255 // A test assembly is where a process-wide start-up step belongs.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Run()
    {
        // The guard remembers a miscomputing oneDNN in the user's cache folder; tests keep to a folder of their own.
        var cache = Path.Combine(Path.GetTempPath(), $"graft-test-cache-{Environment.ProcessId}");
        Environment.SetEnvironmentVariable("XDG_CACHE_HOME", cache);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(cache, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
        };
        try
        {
            NumericsGuard.Ensure();
        }
        catch (NumericsException)
        {
        }
    }
}
