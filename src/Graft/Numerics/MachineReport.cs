using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text;

namespace Graft.Numerics;

/// <summary>The processor, as far as it matters to libtorch's CPU kernels.</summary>
/// <param name="Vendor">e.g. <c>AuthenticAMD</c>, <c>GenuineIntel</c>.</param>
/// <param name="Model">The brand string, e.g. <c>AMD EPYC 9R14</c>.</param>
/// <param name="Architecture">Process architecture (<c>X64</c>, <c>Arm64</c>).</param>
/// <param name="LogicalProcessors">Processors this process may use.</param>
/// <param name="Flags">The instruction-set flags that decide which kernels run (avx2, avx512f, avx512_bf16, amx …), as the OS reports them.</param>
public sealed record CpuDescription(string Vendor, string Model, string Architecture, int LogicalProcessors, IReadOnlyList<string> Flags);

/// <summary>How libtorch was found and set up in this process.</summary>
/// <param name="Loaded">True when libtorch loaded.</param>
/// <param name="Error">Why it did not load (the loader's message), or null.</param>
/// <param name="Version">libtorch's version as TorchSharp reports it.</param>
/// <param name="Threads">Intra-op threads libtorch computes with.</param>
/// <param name="MkldnnBefore">mkldnn (oneDNN) enabled before the guard ran (null: unknown).</param>
/// <param name="MkldnnAfter">mkldnn enabled after the guard ran (null: unknown).</param>
/// <param name="OneDnnIsaCap">oneDNN's instruction-set cap after the guard ran (<c>DNNL_MAX_CPU_ISA</c> as native code sees it), or null.</param>
public sealed record LibTorchDescription(bool Loaded, string? Error, string? Version, int? Threads, bool? MkldnnBefore, bool? MkldnnAfter, string? OneDnnIsaCap);

/// <summary>The Debian 12 / Ubuntu 22.04 step: TorchSharp's native library wants GLIBCXX_3.4.32, which older libstdc++ lacks.</summary>
/// <param name="SystemLibStdCxx">The libstdc++ the loader picks, or null when none was found (not Linux).</param>
/// <param name="HasGlibcxx3432">Whether it provides GLIBCXX_3.4.32 (null: not Linux or not found).</param>
/// <param name="Note">What that means for this process.</param>
public sealed record LibStdCxxDescription(string? SystemLibStdCxx, bool? HasGlibcxx3432, string Note);

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
public sealed record MachineReport(string Graft, string TorchSharp, string Runtime, string OperatingSystem, CpuDescription Cpu,
    IReadOnlyDictionary<string, string?> Environment, LibTorchDescription LibTorch, NumericsGuardReport? Guard, string? GuardError,
    LibStdCxxDescription LibStdCxx, string? MemoryFile, bool Remembered)
{
    private static readonly string[] s_flagsThatMatter =
        ["sse4_2", "fma", "avx", "avx2", "avx_vnni", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd", "sve"];

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
        var libstdcxx = DescribeLibStdCxx();
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
            RuntimeInformation.FrameworkDescription, RuntimeInformation.OSDescription, DescribeCpu(), env, libtorch, guard, guardError, libstdcxx,
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

    internal static CpuDescription DescribeCpu()
    {
        string vendor = "?", model = "?";
        var flags = new List<string>();
        if (File.Exists("/proc/cpuinfo"))
        {
            // The first processor's block; every processor of a host reports the same flags.
            foreach (var line in File.ReadLines("/proc/cpuinfo").TakeWhile(l => l.Length > 0))
            {
                int colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon < 0)
                {
                    continue;
                }
                var key = line[..colon].Trim();
                var value = line[(colon + 1)..].Trim();
                switch (key)
                {
                    case "vendor_id" or "CPU implementer":
                        vendor = value;
                        break;
                    case "model name":
                        model = value;
                        break;
                    case "flags" or "Features":
                        var have = value.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
                        flags.AddRange(s_flagsThatMatter.Where(have.Contains));
                        break;
                }
            }
        }
        if (X86Base.IsSupported && (vendor == "?" || model == "?"))
        {
            (vendor, model) = CpuId();
        }
        if (flags.Count == 0 && X86Base.IsSupported)
        {
            // No /proc/cpuinfo (Windows, macOS): what the .NET runtime found.
            if (Fma.IsSupported)
            {
                flags.Add("fma");
            }
            if (Avx2.IsSupported)
            {
                flags.Add("avx2");
            }
            if (AvxVnni.IsSupported)
            {
                flags.Add("avx_vnni");
            }
            if (Avx512F.IsSupported)
            {
                flags.Add("avx512f");
            }
            if (Avx512BW.IsSupported)
            {
                flags.Add("avx512bw");
            }
        }
        return new CpuDescription(vendor, model, RuntimeInformation.ProcessArchitecture.ToString(), System.Environment.ProcessorCount, flags);
    }

    private static (string Vendor, string Model) CpuId()
    {
        var (_, b, c, d) = X86Base.CpuId(0, 0);
        var vendor = new StringBuilder();
        foreach (var r in new[] { b, d, c })
        {
            vendor.Append(Encoding.ASCII.GetString(BitConverter.GetBytes(r)));
        }
        var model = new StringBuilder();
        if ((uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax >= 0x80000004)
        {
            for (uint leaf = 0x80000002; leaf <= 0x80000004; leaf++)
            {
                var (ea, eb, ec, ed) = X86Base.CpuId(unchecked((int)leaf), 0);
                foreach (var r in new[] { ea, eb, ec, ed })
                {
                    model.Append(Encoding.ASCII.GetString(BitConverter.GetBytes(r)));
                }
            }
        }
        return (vendor.ToString(), model.ToString().TrimEnd('\0').Trim());
    }

    private static LibStdCxxDescription DescribeLibStdCxx()
    {
        if (!System.OperatingSystem.IsLinux())
        {
            return new LibStdCxxDescription(null, null, "not Linux: no libstdc++ step");
        }
        string[] candidates = ["/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6"];
        var path = candidates.FirstOrDefault(File.Exists);
        if (path is null)
        {
            return new LibStdCxxDescription(null, null, "no system libstdc++ found in the usual places");
        }
        bool has = File.ReadAllBytes(path).AsSpan().IndexOf("GLIBCXX_3.4.32\0"u8) >= 0;
        return new LibStdCxxDescription(path, has, has
            ? "provides GLIBCXX_3.4.32: TorchSharp's native library loads as shipped"
            : "lacks GLIBCXX_3.4.32 (Debian 12 / Ubuntu 22.04): Graft's build step marks that requirement weak in the copy of libLibTorchSharp.so in the output (build/Graft.TorchSharpCompat.targets)");
    }
}
