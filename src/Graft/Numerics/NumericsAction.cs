namespace Graft.Numerics;

/// <summary>What the guard did to the process.</summary>
public enum NumericsAction
{
    /// <summary>Nothing: the check passed as the process was (or the guard is off).</summary>
    None,

    /// <summary>mkldnn (oneDNN) was turned off for the process because the check failed.</summary>
    MkldnnDisabled,

    /// <summary>mkldnn (oneDNN) was turned off because the guard was forced on.</summary>
    MkldnnDisabledByRequest,

    /// <summary>
    /// oneDNN was capped at AVX2 before its first kernel (<c>DNNL_MAX_CPU_ISA=AVX2</c>), because an earlier process on
    /// this machine saw its kernels miscompute (<see cref="NumericsGuard.MemoryFile"/>); the check then passed.
    /// </summary>
    IsaCapped,
}
