using System.Reflection;
using System.Runtime.InteropServices;

namespace Graft.Numerics;

/// <summary>
/// What a user pastes into a bug report about wrong numbers: versions, processor, threads, the oneDNN switches, the
/// numerics guard's decision and the libstdc++ step. <c>graft doctor</c> prints it.
/// </summary>
/// <param name="Graft">Graft's version.</param>
/// <param name="TorchSharp">TorchSharp's version.</param>
/// <param name="Runtime">The .NET runtime.</param>
/// <param name="OperatingSystem">The OS description.</param>
/// <param name="Cpu">The processor.</param>
/// <param name="Environment">The environment variables that change libtorch's kernels or the guard (DNNL_MAX_CPU_ISA as native code sees it); null when unset.</param>
/// <param name="LibTorch">libtorch in this process.</param>
/// <param name="Guard">The numerics guard's report (null when libtorch did not load or the guard's settings are invalid).</param>
/// <param name="GuardError">Why the guard could not run, or null.</param>
/// <param name="LibStdCxx">The Debian 12 libstdc++ step.</param>
/// <param name="MemoryFile">Where the guard remembers miscomputing oneDNN kernels on this CPU (<see cref="NumericsGuard.MemoryFile"/>).</param>
/// <param name="Remembered">Whether that file existed when the report was collected.</param>
internal sealed record MachineReport(string Graft, string TorchSharp, string Runtime, string OperatingSystem, CpuDescription Cpu,
    IReadOnlyDictionary<string, string?> Environment, LibTorchDescription LibTorch, NumericsGuardReport? Guard, string? GuardError,
    LibStdCxxDescription LibStdCxx, string? MemoryFile, bool Remembered)
{
    private static readonly string[] s_variables =
        ["DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE", NumericsGuard.ModeVariable, NumericsGuard.FaultVariable];

    /// <summary>True when libtorch loaded and its convolutions can be trusted (after the guard's workaround, if any).</summary>
    public bool Healthy => LibTorch.Loaded && Guard is { Trusted: true };

    /// <summary>
    /// Collects the report. Loads libtorch and runs <see cref="NumericsGuard.Ensure"/> (which may turn mkldnn off for the
    /// process, as any Graft computation would); a libtorch that fails to load is reported, not thrown.
    /// </summary>
    public static MachineReport Collect()
    {
        var env = s_variables.ToDictionary(v => v, v => v == "DNNL_MAX_CPU_ISA" ? SafeNativeIsa() : System.Environment.GetEnvironmentVariable(v), StringComparer.Ordinal);
        var libstdcxx = LibStdCxxDescription.OfThisMachine();
        bool remembered = NumericsMemory.Recall();
        LibTorchDescription libtorch;
        NumericsGuardReport? guard = null;
        string? guardError = null;
        try
        {
            TensorBridge.AfterWarmUp();
            using (var t = global::TorchSharp.torch.zeros(1))
            {
            }
            bool? before = NumericsGuard.Report is null ? LibTorchSwitches.MkldnnEnabled : null;
            try
            {
                guard = NumericsGuard.Ensure();
            }
            catch (NumericsException e)
            {
                guard = e.Report;
            }
            catch (ArgumentException e)
            {
                guardError = e.Message;
            }
            libtorch = new LibTorchDescription(true, null, global::TorchSharp.torch.__version__, global::TorchSharp.torch.get_num_threads(), before, LibTorchSwitches.MkldnnEnabled, SafeNativeIsa());
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException or EntryPointNotFoundException or BadImageFormatException)
        {
            libtorch = new LibTorchDescription(false, Innermost(e).Message, null, null, null, null, null);
        }
        return new MachineReport(Version(typeof(MachineReport).Assembly), Version(typeof(global::TorchSharp.torch).Assembly),
            RuntimeInformation.FrameworkDescription, RuntimeInformation.OSDescription, CpuDescription.OfThisMachine(), env, libtorch, guard, guardError, libstdcxx,
            NumericsMemory.File, remembered);
    }

    private static string? SafeNativeIsa()
    {
        try
        {
            return LibTorchSwitches.DnnlMaxCpuIsa;
        }
        catch (DllNotFoundException)
        {
            return System.Environment.GetEnvironmentVariable("DNNL_MAX_CPU_ISA");
        }
    }

    private static Exception Innermost(Exception e) => e.InnerException is { } inner ? Innermost(inner) : e;

    private static string Version(Assembly a) =>
        a.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? a.GetName().Version?.ToString() ?? "?";
}
