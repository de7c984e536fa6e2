using Graft.Checkpoints;

namespace Graft.Numerics;

/// <summary>
/// Makes sure libtorch's CPU convolutions compute right before Graft relies on them. Graft calls <see cref="Ensure"/>
/// itself before its first convolution (linked layers, <c>Verify</c>, growth checks, transfers that compute); an
/// application that trains its own TorchSharp models can call it once at start-up too.
/// </summary>
/// <remarks>
/// <para>Once per process: run <see cref="NumericsCheck"/>; when it fails (on some AVX-512 AMD hosts libtorch 2.10's oneDNN
/// kernels return wrong values or NaN), turn mkldnn off for the process (through the switch <c>libtorch_cpu</c> exports) and check
/// again. Either way <see cref="Intervened"/> is raised once: if the second check passes the process computes correctly;
/// if not, <see cref="Ensure"/> throws <see cref="NumericsException"/> every time it is called, so nothing is computed
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

    /// <summary>
    /// Raised once, on the thread that ran the guard, when the guard intervened: it changed the process (mkldnn turned
    /// off, oneDNN capped), or found libtorch's convolutions wrong and no workaround cured them (then <see cref="Ensure"/>
    /// refuses). Not raised when the check passed as the process was, nor when the guard is off. An application shows
    /// the report's <see cref="NumericsGuardReport.Describe"/> to its user once.
    /// </summary>
    public static event EventHandler<NumericsGuardReport>? Intervened;

    /// <summary>The guard's decision, or null before <see cref="Ensure"/> first ran.</summary>
    public static NumericsGuardReport? Report => Volatile.Read(ref s_report);

    /// <summary>
    /// Runs the guard once per process (later calls return the same report at once) and returns its report.
    /// </summary>
    /// <exception cref="NumericsException">libtorch's convolutions compute wrong values here and the workaround did not cure it.</exception>
    /// <exception cref="InvalidInputException"><see cref="ModeVariable"/> or <see cref="FaultVariable"/> has a value it does not know.</exception>
    public static NumericsGuardReport Ensure()
    {
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
                Intervened?.Invoke(null, report);
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
