using System.Security.Cryptography;
using System.Text;

namespace Graft.Numerics;

/// <summary>
/// The numerics guard's memory: a small file under the user's cache folder (<c>$XDG_CACHE_HOME/graft/numerics/</c>, else
/// <c>~/.cache/graft/numerics/</c>; the local application-data folder on Windows) whose presence says that oneDNN's
/// kernels miscomputed on this CPU model, flags and libtorch version. Best effort: a folder that cannot be written just
/// means the next process learns it again.
/// </summary>
internal static class NumericsMemory
{
    private static readonly Lazy<string?> s_file = new(Locate);

    public static string? File => s_file.Value;

    public static bool Recall() => File is { } f && System.IO.File.Exists(f);

    public static void Remember()
    {
        if (File is not { } f)
        {
            return;
        }
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(f)!);
            var cpu = CpuDescription.OfThisMachine();
            var tmp = f + "." + Environment.ProcessId + ".tmp";
            System.IO.File.WriteAllText(tmp,
                $"Graft's numerics self-check found libtorch's oneDNN convolutions miscomputing on this CPU ({cpu.Vendor} {cpu.Model}; {string.Join(' ', cpu.Flags)}), {DateTime.UtcNow:u}.{Environment.NewLine}" +
                $"While this file exists, Graft caps oneDNN at AVX2 (DNNL_MAX_CPU_ISA=AVX2) before its first kernel and checks again. Delete it to test AVX-512 again.{Environment.NewLine}");
            System.IO.File.Move(tmp, f, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private static string? Locate()
    {
        string? root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(root) || !Path.IsPathRooted(root))
        {
            root = OperatingSystem.IsWindows()
                ? Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData)
                : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) is { Length: > 0 } home ? Path.Combine(home, ".cache") : null;
        }
        if (string.IsNullOrEmpty(root))
        {
            return null;
        }
        var cpu = CpuDescription.OfThisMachine();
        var key = $"{cpu.Vendor}|{cpu.Model}|{string.Join(' ', cpu.Flags)}|{typeof(global::TorchSharp.torch).Assembly.GetName().Version}";
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..16].ToLowerInvariant();
        return Path.Combine(root, "graft", "numerics", $"onednn-miscomputes-{hash}.txt");
    }
}
