namespace Graft.Numerics;

/// <summary>The result of one run of <see cref="NumericsCheck.Run"/>.</summary>
/// <param name="Cases">Every case, in order.</param>
/// <param name="Tolerance">Largest relative error accepted (float32 against float64 on these sizes is ~1e-6; the kernels this guards against are off by 1e-1 or NaN).</param>
/// <param name="Threads">libtorch's intra-op thread count during the check.</param>
/// <param name="MkldnnEnabled">Whether mkldnn (oneDNN) kernels were enabled during the check (null: unknown).</param>
/// <param name="Milliseconds">Wall time of the check.</param>
/// <param name="FaultInjected">True when a fault was injected on purpose (<see cref="NumericsGuard.FaultVariable"/>).</param>
public sealed record NumericsCheckResult(IReadOnlyList<NumericsCase> Cases, double Tolerance, int Threads, bool? MkldnnEnabled, double Milliseconds, bool FaultInjected)
{
    /// <summary>True when every case is within the tolerance.</summary>
    public bool Passed => Cases.All(c => c.Within(Tolerance));

    /// <summary>One line: "passed (3 cases, worst 4.1e-7, 12 ms)" or which cases failed and how.</summary>
    public string Describe()
    {
        var ms = $"{Milliseconds:0} ms";
        if (Passed)
        {
            return $"passed ({Cases.Count} cases, worst relative error {NumericsCheck.Format(Cases.Max(c => c.Worst))}, {ms})";
        }
        var failed = Cases.Where(c => !c.Within(Tolerance)).Select(c => $"{c.Name} {c.Failures(Tolerance)}");
        return $"FAILED ({string.Join("; ", failed)}; relative errors, tolerance {NumericsCheck.Format(Tolerance)}; {ms}){(FaultInjected ? " [fault injected]" : "")}";
    }
}
