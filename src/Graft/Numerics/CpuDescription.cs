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
internal sealed record CpuDescription(string Vendor, string Model, string Architecture, int LogicalProcessors, IReadOnlyList<string> Flags)
{
    private static readonly string[] s_flagsThatMatter =
        ["sse4_2", "fma", "avx", "avx2", "avx_vnni", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd", "sve"];

    /// <summary>
    /// This machine's processor: from <c>/proc/cpuinfo</c> on Linux, else what CPUID and the .NET runtime report. The
    /// guard's memory is keyed by it; <c>graft doctor</c> prints it.
    /// </summary>
    public static CpuDescription OfThisMachine()
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
}
