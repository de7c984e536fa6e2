namespace Graft.Numerics;

/// <summary>The Debian 12 / Ubuntu 22.04 step: TorchSharp's native library wants GLIBCXX_3.4.32, which older libstdc++ lacks.</summary>
/// <param name="SystemLibStdCxx">The libstdc++ the loader picks, or null when none was found (not Linux).</param>
/// <param name="HasGlibcxx3432">Whether it provides GLIBCXX_3.4.32 (null: not Linux or not found).</param>
/// <param name="Note">What that means for this process.</param>
internal sealed record LibStdCxxDescription(string? SystemLibStdCxx, bool? HasGlibcxx3432, string Note)
{
    /// <summary>The libstdc++ this process's loader picks, and whether TorchSharp's native library loads on it as shipped.</summary>
    public static LibStdCxxDescription OfThisMachine()
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
