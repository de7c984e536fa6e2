namespace Graft.Numerics;

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
