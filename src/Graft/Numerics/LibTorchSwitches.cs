using System.Runtime.InteropServices;

namespace Graft.Numerics;

/// <summary>
/// The process-wide libtorch switches that decide which CPU convolution kernels run. TorchSharp 0.107 has no managed
/// switch for mkldnn (oneDNN), so this calls the two functions <c>libtorch_cpu</c> exports for it
/// (<c>at::globalContext()</c> and <c>at::Context::setUserEnabledMkldnn(bool)</c>), and reads oneDNN's
/// <c>DNNL_MAX_CPU_ISA</c> from the native environment (which .NET's <see cref="Environment"/> does not reach on Linux).
/// </summary>
internal static class LibTorchSwitches
{
    private const string IsaVariable = "DNNL_MAX_CPU_ISA";

    private static readonly Lazy<Exports?> s_exports = new(Exports.Find);

    /// <summary>
    /// Whether libtorch may use mkldnn (oneDNN) kernels, or null when the switch cannot be reached (libtorch not found,
    /// or a build that does not export it). Loads libtorch.
    /// </summary>
    public static bool? MkldnnEnabled => Get(Switch.Mkldnn);

    /// <summary>Whether libtorch may use NNPACK convolutions (tried when mkldnn is off), or null when the switch cannot be reached.</summary>
    public static bool? NnpackEnabled => Get(Switch.Nnpack);

    /// <summary>
    /// Turns libtorch's mkldnn (oneDNN) kernels on or off for the whole process; convolutions then take ATen's own
    /// kernels (im2col and BLAS). Takes effect for every later operation, whenever it is called. Returns false when the
    /// switch cannot be reached.
    /// </summary>
    public static bool TrySetMkldnnEnabled(bool enabled) => TrySet(Switch.Mkldnn, enabled);

    /// <summary>
    /// Turns NNPACK on or off for the whole process. Where NNPACK cannot run (most AVX-512 hosts), libtorch tries it
    /// for every float32 convolution that mkldnn does not take and prints "Could not initialize NNPACK" each time.
    /// </summary>
    public static bool TrySetNnpackEnabled(bool enabled) => TrySet(Switch.Nnpack, enabled);

    private static bool? Get(Switch which)
    {
        var e = s_exports.Value;
        return e is null ? null : e.Get(which) != 0;
    }

    private static bool TrySet(Switch which, bool enabled)
    {
        var e = s_exports.Value;
        if (e is null)
        {
            return false;
        }
        e.Set(which, enabled ? (byte)1 : (byte)0);
        return e.Get(which) == (enabled ? 1 : 0);
    }

    /// <summary>
    /// oneDNN's instruction-set cap as native code sees it (<c>DNNL_MAX_CPU_ISA</c>, e.g. <c>AVX2</c>), or null when
    /// unset. oneDNN reads it once, before its first primitive, so it must be set before the process starts.
    /// </summary>
    public static string? DnnlMaxCpuIsa
    {
        get
        {
            if (OperatingSystem.IsWindows())
            {
                return Environment.GetEnvironmentVariable(IsaVariable);
            }
            var p = NativeGetEnv(IsaVariable);
            return p == IntPtr.Zero ? null : Marshal.PtrToStringUTF8(p);
        }
    }

    /// <summary>
    /// Caps oneDNN at AVX2 (<c>DNNL_MAX_CPU_ISA=AVX2</c> in the native environment) unless the user set a cap. oneDNN
    /// reads it once, before its first kernel; set later it changes nothing, which the caller's next check reveals.
    /// Returns false when a cap was already set or the environment cannot be changed (Windows: .NET's own environment
    /// is the native one there).
    /// </summary>
    public static bool TryCapOneDnnIsa()
    {
        if (DnnlMaxCpuIsa is not null || Environment.GetEnvironmentVariable("ONEDNN_MAX_CPU_ISA") is not null)
        {
            return false;
        }
        if (OperatingSystem.IsWindows())
        {
            Environment.SetEnvironmentVariable(IsaVariable, "AVX2");
            return true;
        }
        return NativeSetEnv(IsaVariable, "AVX2", 0) == 0;
    }

    [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int NativeSetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    [DllImport("libc", EntryPoint = "getenv", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern IntPtr NativeGetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    private enum Switch
    {
        Mkldnn,
        Nnpack,
    }

    /// <summary>The exported entry points, found once; null when any is missing.</summary>
    private sealed unsafe class Exports
    {
        private readonly delegate* unmanaged<IntPtr> _context;
        private readonly delegate* unmanaged<IntPtr, byte>[] _get;
        private readonly delegate* unmanaged<IntPtr, byte, void>[] _set;

        private Exports(IntPtr[] f)
        {
            _context = (delegate* unmanaged<IntPtr>)f[0];
            _get = [(delegate* unmanaged<IntPtr, byte>)f[1], (delegate* unmanaged<IntPtr, byte>)f[3]];
            _set = [(delegate* unmanaged<IntPtr, byte, void>)f[2], (delegate* unmanaged<IntPtr, byte, void>)f[4]];
        }

        public byte Get(Switch which) => _get[(int)which](_context());

        public void Set(Switch which, byte value) => _set[(int)which](_context(), value);

        public static Exports? Find()
        {
            // TorchSharp loads libtorch_cpu with libLibTorchSharp; make sure that happened, then look the library up.
            using (var t = TorchSharp.torch.zeros(1))
            {
            }
            // at::globalContext(); Context::userEnabledMkldnn() const; setUserEnabledMkldnn(bool); the same for NNPACK.
            var (library, names) = OperatingSystem.IsWindows()
                ? ("torch_cpu.dll", new[]
                {
                    "?globalContext@at@@YAAEAVContext@1@XZ",
                    "?userEnabledMkldnn@Context@at@@QEBA_NXZ", "?setUserEnabledMkldnn@Context@at@@QEAAX_N@Z",
                    "?userEnabledNNPACK@Context@at@@QEBA_NXZ", "?setUserEnabledNNPACK@Context@at@@QEAAX_N@Z",
                })
                : (OperatingSystem.IsMacOS() ? "libtorch_cpu.dylib" : "libtorch_cpu.so", new[]
                {
                    "_ZN2at13globalContextEv",
                    "_ZNK2at7Context17userEnabledMkldnnEv", "_ZN2at7Context20setUserEnabledMkldnnEb",
                    "_ZNK2at7Context17userEnabledNNPACKEv", "_ZN2at7Context20setUserEnabledNNPACKEb",
                });
            if (!NativeLibrary.TryLoad(library, typeof(TorchSharp.torch).Assembly, null, out var handle)
                && !NativeLibrary.TryLoad(library, out handle))
            {
                return null;
            }
            var found = new IntPtr[names.Length];
            for (int i = 0; i < names.Length; i++)
            {
                if (!NativeLibrary.TryGetExport(handle, names[i], out found[i]))
                {
                    return null;
                }
            }
            return new Exports(found);
        }
    }
}
