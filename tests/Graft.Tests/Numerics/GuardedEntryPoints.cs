using Graft.Growth;
using Graft.Linked;
using Graft.Numerics;
using Graft.Transfer;
using static TorchSharp.torch;

namespace Graft.Tests.Numerics;

/// <summary>
/// Graft's entry points that compute on libtorch's convolution kernels, each of which must ask the numerics guard first.
/// They run in a child process (the guard decides once per process) whose self-check fails on purpose
/// (<see cref="NumericsGuard.FaultVariable"/><c>=always</c>): an entry point that guards itself refuses with
/// <see cref="NumericsException"/>; one that does not computes, and the test sees it.
/// </summary>
internal static class GuardedEntryPoints
{
    /// <summary>The argument that makes the test assembly run <see cref="RunAll"/> instead of nothing (see Program).</summary>
    public const string Command = "numerics-entry-points";

    /// <summary>What the child prints before each entry point's outcome.</summary>
    public const string Prefix = "entry point ";

    /// <summary>What the child prints for an entry point that refused with <see cref="NumericsException"/>.</summary>
    public const string Refused = "refused";

    /// <summary>Each entry point, by name, with inputs small enough to run in a few milliseconds.</summary>
    public static IReadOnlyList<(string Name, Action Run)> All { get; } =
    [
        ("Verify.Compare", () =>
        {
            var a = nn.Conv2d(2, 2, 3);
            Verify.Compare(a, a, _ => randn(1, 2, 5, 5), 1);
        }),
        ("LinkedConv.forward", () => Link.Conv2d(nn.Conv2d(2, 4, 3)).forward(randn(1, 2, 5, 5))),
        ("LinkedLinear.forward", () => Link.Linear(nn.Linear(3, 2)).forward(randn(1, 3))),
        // A bilinear kernel resize has no managed twin (a stem's input sum would run without libtorch).
        ("WeightTransfer.Modules (computing)", () =>
            WeightTransfer.Modules(nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 5), TransferPolicy.Default with { Kernel = KernelRule.Bilinear })),
    ];

    /// <summary>Runs every entry point and prints one line each: <c>entry point NAME: refused</c>, <c>computed</c>, or the exception.</summary>
    public static int RunAll(TextWriter output)
    {
        foreach (var (name, run) in All)
        {
            string outcome;
            using (NewDisposeScope())
            {
                try
                {
                    run();
                    outcome = "computed";
                }
                catch (NumericsException)
                {
                    outcome = Refused;
                }
#pragma warning disable CA1031 // Any other failure is an outcome the test names, not a crash of the child.
                catch (Exception e)
#pragma warning restore CA1031
                {
                    outcome = $"{e.GetType().Name}: {e.Message}";
                }
            }
            output.WriteLine($"{Prefix}{name}: {outcome}");
        }
        return 0;
    }
}
