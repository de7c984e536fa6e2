using Graft.Checkpoints;

namespace Graft.Numerics;

/// <summary>What <see cref="NumericsGuard"/> is told to do (environment variable <see cref="NumericsGuard.ModeVariable"/>).</summary>
public enum NumericsGuardMode
{
    /// <summary>Check; when the check fails, turn mkldnn off and check again (the default).</summary>
    Auto,

    /// <summary>Turn mkldnn off without waiting for a failure, then check (<c>on</c>): for users who know their CPU is affected, and for tests.</summary>
    On,

    /// <summary>Neither check nor change anything (<c>off</c>): for users who know better.</summary>
    Off,
}

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

/// <summary>Thrown by <see cref="NumericsGuard.Ensure"/> when libtorch's convolutions compute wrong values and the workaround did not help.</summary>
public sealed class NumericsException : Exception
{
    /// <summary>Creates the exception for a guard report that is not trusted.</summary>
    public NumericsException(NumericsGuardReport report)
        : base((report ?? throw new ArgumentNullException(nameof(report))).Describe())
    {
        Report = report;
    }

    /// <summary>The guard's report.</summary>
    public NumericsGuardReport Report { get; }
}

/// <summary>
/// Makes sure libtorch's CPU convolutions compute right before Graft relies on them. Graft calls <see cref="Ensure"/>
/// itself before its first convolution (linked layers, <c>Verify</c>, growth checks, transfers that compute); an
/// application that trains its own TorchSharp models can call it once at start-up too.
/// </summary>
/// <remarks>
/// <para>Once per process: run <see cref="NumericsCheck"/>; when it fails (on some AVX-512 AMD hosts libtorch 2.10's oneDNN
/// kernels return wrong values or NaN), turn mkldnn off for the process (<see cref="LibTorchSwitches"/>) and check
/// again. If the second check passes the process computes correctly and <see cref="WorkaroundApplied"/> is raised; if
/// not, <see cref="Ensure"/> throws <see cref="NumericsException"/> every time it is called, so nothing is computed
/// wrongly in silence.</para>
/// <para><see cref="ModeVariable"/> (<c>auto</c>, <c>on</c>, <c>off</c>) forces the guard; <see cref="FaultVariable"/>
/// (<c>first</c>, <c>always</c>) injects a failing check, for tests of this path on machines whose kernels are fine.</para>
/// </remarks>
public static class NumericsGuard
{
    /// <summary>Environment variable that forces the guard: <c>auto</c> (default), <c>on</c> (turn mkldnn off, then check), <c>off</c>.</summary>
    public const string ModeVariable = "GRAFT_NUMERICS_GUARD";

    /// <summary>Environment variable that injects a NaN into the check, for tests: <c>first</c> (the first check only) or <c>always</c>.</summary>
    public const string FaultVariable = "GRAFT_NUMERICS_FAULT";

    private static readonly Lock s_gate = new();
    private static NumericsGuardReport? s_report;
    private static int s_ensureCalls;

    /// <summary>How often <see cref="Ensure"/> was called in this process: lets tests see that an entry point guards itself.</summary>
    internal static int EnsureCalls => Volatile.Read(ref s_ensureCalls);

    /// <summary>Raised once, on the thread that ran the guard, when the guard changed the process (mkldnn turned off), or found it untrustworthy.</summary>
    public static event EventHandler<NumericsGuardReport>? WorkaroundApplied;

    /// <summary>The guard's decision, or null before <see cref="Ensure"/> first ran.</summary>
    public static NumericsGuardReport? Report => Volatile.Read(ref s_report);

    /// <summary>
    /// Runs the guard once per process (later calls return the same report at once) and returns its report.
    /// </summary>
    /// <exception cref="NumericsException">libtorch's convolutions compute wrong values here and the workaround did not cure it.</exception>
    /// <exception cref="InvalidInputException"><see cref="ModeVariable"/> or <see cref="FaultVariable"/> has a value it does not know.</exception>
    public static NumericsGuardReport Ensure()
    {
        Interlocked.Increment(ref s_ensureCalls);
        var report = Volatile.Read(ref s_report);
        if (report is null)
        {
            bool ran = false;
            lock (s_gate)
            {
                report = s_report;
                if (report is null)
                {
                    report = Decide(ReadMode(), ReadFault(), NumericsCheck.RunWith, s_levers);
                    Volatile.Write(ref s_report, report);
                    ran = true;
                }
            }
            if (ran && (report.Action != NumericsAction.None || !report.Trusted))
            {
                WorkaroundApplied?.Invoke(null, report);
            }
        }
        return report.Trusted ? report : throw new NumericsException(report);
    }

    /// <summary>
    /// Where the guard remembers that this machine's oneDNN kernels miscomputed (one small file per CPU model, flags and
    /// libtorch version, under the user's cache folder), so that later processes cap oneDNN at AVX2 before its first
    /// kernel instead of turning it off. Delete it to make the guard test the AVX-512 kernels again.
    /// </summary>
    public static string? MemoryFile => NumericsMemory.File;

    /// <summary>The process's levers.</summary>
    private static readonly NumericsLevers s_levers = new(
        DisableMkldnn: static () =>
        {
            // mkldnn off, and NNPACK too: the next fallback, which cannot run on these hosts and warns at every call.
            bool off = LibTorchSwitches.TrySetMkldnnEnabled(false);
            LibTorchSwitches.TrySetNnpackEnabled(false);
            return off;
        },
        CapIsa: LibTorchSwitches.TryCapOneDnnIsa,
        Remembered: NumericsMemory.Recall,
        Remember: NumericsMemory.Remember);

    /// <summary>
    /// The guard's logic, apart from the process: <paramref name="check"/> runs the self-check (its argument: inject a
    /// fault), <paramref name="levers"/> change the process or remember a verdict.
    /// </summary>
    internal static NumericsGuardReport Decide(NumericsGuardMode mode, NumericsFault fault, Func<bool, NumericsCheckResult> check, NumericsLevers levers)
    {
        int runs = 0;
        NumericsCheckResult Check() => check(fault == NumericsFault.Always || (fault == NumericsFault.First && runs++ == 0));
        switch (mode)
        {
            case NumericsGuardMode.Off:
                return new NumericsGuardReport(mode, null, NumericsAction.None, null, Trusted: true);
            case NumericsGuardMode.On:
            {
                bool off = levers.DisableMkldnn();
                var after = Check();
                return new NumericsGuardReport(mode, null, off ? NumericsAction.MkldnnDisabledByRequest : NumericsAction.None, after, after.Passed);
            }
            default:
            {
                if (levers.Remembered() && levers.CapIsa())
                {
                    var capped = Check();
                    if (capped.Passed)
                    {
                        return new NumericsGuardReport(mode, null, NumericsAction.IsaCapped, capped, Trusted: true);
                    }
                    return Repair(mode, capped, Check, levers);
                }
                var first = Check();
                return first.Passed ? new NumericsGuardReport(mode, first, NumericsAction.None, null, Trusted: true) : Repair(mode, first, Check, levers);
            }
        }
    }

    /// <summary>After a failed check: mkldnn off, check again; a genuine failure that this cures is remembered for later processes.</summary>
    private static NumericsGuardReport Repair(NumericsGuardMode mode, NumericsCheckResult failed, Func<NumericsCheckResult> check, NumericsLevers levers)
    {
        if (!levers.DisableMkldnn())
        {
            return new NumericsGuardReport(mode, failed, NumericsAction.None, null, Trusted: false);
        }
        var second = check();
        if (second.Passed && !failed.FaultInjected)
        {
            levers.Remember();
        }
        return new NumericsGuardReport(mode, failed, NumericsAction.MkldnnDisabled, second, second.Passed);
    }

    /// <summary>The mode the environment asks for.</summary>
    public static NumericsGuardMode ReadMode() => Environment.GetEnvironmentVariable(ModeVariable)?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => NumericsGuardMode.Auto,
        "on" or "1" or "true" => NumericsGuardMode.On,
        "off" or "0" or "false" => NumericsGuardMode.Off,
        var v => throw new InvalidInputException($"{ModeVariable}={v}: expected auto, on or off."),
    };

    internal static NumericsFault ReadFault() => Environment.GetEnvironmentVariable(FaultVariable)?.Trim().ToLowerInvariant() switch
    {
        null or "" or "none" => NumericsFault.None,
        "first" => NumericsFault.First,
        "always" => NumericsFault.Always,
        var v => throw new InvalidInputException($"{FaultVariable}={v}: expected first or always."),
    };
}

/// <summary>What the guard can do to the process: each returns whether it took effect.</summary>
internal sealed record NumericsLevers(Func<bool> DisableMkldnn, Func<bool> CapIsa, Func<bool> Remembered, Action Remember);

/// <summary>A fault injected into the self-check on purpose.</summary>
internal enum NumericsFault
{
    None,
    First,
    Always,
}
