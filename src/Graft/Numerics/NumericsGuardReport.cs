namespace Graft.Numerics;

/// <summary>The guard's decision, once per process.</summary>
/// <param name="Mode">The mode it ran in.</param>
/// <param name="FirstCheck">The check as the process was (null when forced on or off).</param>
/// <param name="Action">What it changed.</param>
/// <param name="FinalCheck">The check after the change (null when nothing changed or the guard is off).</param>
/// <param name="Trusted">True when libtorch's convolutions can be trusted: the last check passed (or the guard is off).</param>
public sealed record NumericsGuardReport(NumericsGuardMode Mode, NumericsCheckResult? FirstCheck, NumericsAction Action, NumericsCheckResult? FinalCheck, bool Trusted)
{
    /// <summary>The check that decided: the one after the change, else the first.</summary>
    public NumericsCheckResult? LastCheck => FinalCheck ?? FirstCheck;

    /// <summary>One line for a person: what was found and what was done.</summary>
    public string Describe() => (Mode, Action, Trusted) switch
    {
        (NumericsGuardMode.Off, _, _) => $"numerics guard off ({NumericsGuard.ModeVariable}=off): libtorch's convolutions are not checked",
        (_, NumericsAction.MkldnnDisabled, true) =>
            $"libtorch's oneDNN convolutions miscompute on this CPU (self-check {FirstCheck!.Describe()}); mkldnn is turned off for this process, and the check now passes (convolutions are slower; later runs cap oneDNN at AVX2 instead, which is as right and faster)",
        (_, NumericsAction.IsaCapped, true) => $"oneDNN capped at AVX2 (its AVX-512 convolutions miscomputed on this CPU in an earlier run); self-check {FinalCheck!.Describe()}",
        (_, NumericsAction.MkldnnDisabledByRequest, true) => $"mkldnn turned off for this process ({NumericsGuard.ModeVariable}=on); self-check {FinalCheck!.Describe()}",
        (_, NumericsAction.None, true) => $"self-check {FirstCheck!.Describe()}",
        _ => $"libtorch's CPU convolutions give wrong results on this machine and no workaround cured it (self-check {LastCheck?.Describe() ?? "not run"}); nothing that needs them can be trusted",
    };
}
