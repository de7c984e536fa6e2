namespace Graft.Numerics;

/// <summary>How libtorch was found and set up in this process.</summary>
/// <param name="Loaded">True when libtorch loaded.</param>
/// <param name="Error">Why it did not load (the loader's message), or null.</param>
/// <param name="Version">libtorch's version as TorchSharp reports it.</param>
/// <param name="Threads">Intra-op threads libtorch computes with.</param>
/// <param name="MkldnnBefore">mkldnn (oneDNN) enabled before the guard ran (null: unknown).</param>
/// <param name="MkldnnAfter">mkldnn enabled after the guard ran (null: unknown).</param>
/// <param name="OneDnnIsaCap">oneDNN's instruction-set cap after the guard ran (<c>DNNL_MAX_CPU_ISA</c> as native code sees it), or null.</param>
internal sealed record LibTorchDescription(bool Loaded, string? Error, string? Version, int? Threads, bool? MkldnnBefore, bool? MkldnnAfter, string? OneDnnIsaCap);
