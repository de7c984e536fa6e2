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
