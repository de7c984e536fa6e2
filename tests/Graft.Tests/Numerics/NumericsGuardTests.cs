using System.Diagnostics;
using Graft.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Tests.Numerics;

/// <summary>
/// The numerics guard: its decisions (with a scripted check and lever, so every path runs on any machine), the real
/// self-check in this process, and that Graft's entry points guard themselves (in a child process whose self-check fails
/// on purpose).
/// </summary>
public sealed class NumericsGuardTests
{
    private static NumericsCheckResult Result(bool pass, bool fault) =>
        new([new NumericsCase("conv2d", "scripted", pass ? 1e-7 : double.NaN, 1e-7, 1e-7)], 1e-4, 2, true, 1, fault);

    /// <summary>
    /// A scripted check and levers: the kernels are broken when <paramref name="broken"/> says so, until mkldnn is off
    /// (or oneDNN capped, when <paramref name="capCures"/>); an injected fault always fails.
    /// </summary>
    private static (Func<bool, NumericsCheckResult> Check, NumericsLevers Levers, List<string> Log) Script(
        Func<bool> broken, bool leverWorks = true, bool remembered = false, bool capCures = true)
    {
        var log = new List<string>();
        bool mkldnnOff = false, capped = false;
        return (inject =>
        {
            log.Add(inject ? "check+fault" : "check");
            return Result(pass: !inject && !(broken() && !mkldnnOff && !(capped && capCures)), fault: inject);
        }, new NumericsLevers(
            DisableMkldnn: () =>
            {
                log.Add("lever");
                mkldnnOff = leverWorks;
                return leverWorks;
            },
            CapIsa: () =>
            {
                log.Add("cap");
                capped = true;
                return true;
            },
            Remembered: () => remembered,
            Remember: () => log.Add("remember")), log);
    }

    [Fact]
    public void Decide_Auto_HealthyKernels_ChecksOnceAndChangesNothing()
    {
        var (check, lever, log) = Script(() => false);
        var r = NumericsGuard.Decide(NumericsGuardMode.Auto, NumericsFault.None, check, lever);
        Assert.Equal(["check"], log);
        Assert.True(r.Trusted);
        Assert.Equal(NumericsAction.None, r.Action);
        Assert.Null(r.FinalCheck);
    }

    [Fact]
    public void Decide_Auto_BrokenKernels_TurnsMkldnnOffAndChecksAgain()
    {
        var (check, lever, log) = Script(() => true);
        var r = NumericsGuard.Decide(NumericsGuardMode.Auto, NumericsFault.None, check, lever);
        Assert.Equal(["check", "lever", "check", "remember"], log);
        Assert.True(r.Trusted);
        Assert.Equal(NumericsAction.MkldnnDisabled, r.Action);
        Assert.False(r.FirstCheck!.Passed);
        Assert.True(r.FinalCheck!.Passed);
        Assert.Contains("mkldnn is turned off", r.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Decide_Remembered_CapsOneDnnBeforeItsFirstKernel_AndKeepsMkldnn()
    {
        var (check, lever, log) = Script(() => true, remembered: true);
        var r = NumericsGuard.Decide(NumericsGuardMode.Auto, NumericsFault.None, check, lever);
        Assert.Equal(["cap", "check"], log);
        Assert.True(r.Trusted);
        Assert.Equal(NumericsAction.IsaCapped, r.Action);
        Assert.Contains("capped at AVX2", r.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Decide_Remembered_CapDoesNotCure_FallsBackToMkldnnOff()
    {
        var (check, lever, log) = Script(() => true, remembered: true, capCures: false);
        var r = NumericsGuard.Decide(NumericsGuardMode.Auto, NumericsFault.None, check, lever);
        Assert.Equal(["cap", "check", "lever", "check", "remember"], log);
        Assert.True(r.Trusted);
        Assert.Equal(NumericsAction.MkldnnDisabled, r.Action);
    }

    [Fact]
    public void Decide_FaultFirst_TakesTheWorkaroundPath()
    {
        var (check, lever, log) = Script(() => false);
        var r = NumericsGuard.Decide(NumericsGuardMode.Auto, NumericsFault.First, check, lever);
        Assert.Equal(["check+fault", "lever", "check"], log);
        Assert.True(r.Trusted);
        Assert.Equal(NumericsAction.MkldnnDisabled, r.Action);
        Assert.True(r.FirstCheck!.FaultInjected);
    }

    [Fact]
    public void Decide_FaultAlways_IsNotTrusted()
    {
        var (check, lever, log) = Script(() => false);
        var r = NumericsGuard.Decide(NumericsGuardMode.Auto, NumericsFault.Always, check, lever);
        Assert.Equal(["check+fault", "lever", "check+fault"], log);
        Assert.False(r.Trusted);
        Assert.Contains("no workaround cured it", r.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Decide_LeverUnavailable_IsNotTrustedAndDoesNotCheckAgain()
    {
        var (check, lever, log) = Script(() => true, leverWorks: false);
        var r = NumericsGuard.Decide(NumericsGuardMode.Auto, NumericsFault.None, check, lever);
        Assert.Equal(["check", "lever"], log);
        Assert.False(r.Trusted);
    }

    [Fact]
    public void Decide_On_PullsTheLeverFirst_ThenChecks()
    {
        var (check, lever, log) = Script(() => true);
        var r = NumericsGuard.Decide(NumericsGuardMode.On, NumericsFault.None, check, lever);
        Assert.Equal(["lever", "check"], log);
        Assert.True(r.Trusted);
        Assert.Equal(NumericsAction.MkldnnDisabledByRequest, r.Action);
    }

    [Fact]
    public void Decide_Off_NeitherChecksNorChanges()
    {
        var (check, lever, log) = Script(() => true);
        var r = NumericsGuard.Decide(NumericsGuardMode.Off, NumericsFault.Always, check, lever);
        Assert.Empty(log);
        Assert.True(r.Trusted);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(0.3)]
    public void NumericsCase_NotANumberOrLarge_IsNotWithin(double error)
    {
        Assert.False(new NumericsCase("c", "d", 1e-7, error, 1e-7).Within(1e-4));
        Assert.True(new NumericsCase("c", "d", 1e-7, 1e-7, 1e-7).Within(1e-4));
    }

    [Fact]
    public void ReadMode_UnknownValue_NamesTheVariable()
    {
        var before = Environment.GetEnvironmentVariable(NumericsGuard.ModeVariable);
        try
        {
            Environment.SetEnvironmentVariable(NumericsGuard.ModeVariable, "sometimes");
            var e = Assert.Throws<Graft.Checkpoints.InvalidInputException>(() => NumericsGuard.ReadMode());
            Assert.Contains(NumericsGuard.ModeVariable, e.Message, StringComparison.Ordinal);
            Environment.SetEnvironmentVariable(NumericsGuard.ModeVariable, " On ");
            Assert.Equal(NumericsGuardMode.On, NumericsGuard.ReadMode());
        }
        finally
        {
            Environment.SetEnvironmentVariable(NumericsGuard.ModeVariable, before);
        }
    }

    [Fact]
    public void Check_InThisProcessAfterTheGuard_Passes()
    {
        // The test assembly ran the guard at start-up (NumericsSetup); whatever it had to do, libtorch's convolutions
        // must now compute right in this process. On a host with miscomputing kernels this fails without the guard.
        var report = NumericsGuard.Ensure();
        var r = NumericsCheck.Run();
        Assert.True(r.Passed, $"{r.Describe()}; guard: {report.Describe()}");
        Assert.Equal(3, r.Cases.Count);
        Assert.All(r.Cases, c => Assert.True(c.Worst < 1e-5, c.Name + " " + c.Worst));
    }

    [Fact]
    public void Check_WithInjectedFault_FailsOnTheNaN()
    {
        var r = NumericsCheck.RunWith(injectFault: true);
        Assert.False(r.Passed);
        Assert.True(double.IsNaN(r.Cases[0].Forward));
        Assert.Contains("forward NaN", r.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Check_LeavesTheGlobalRandomStreamAlone()
    {
        manual_seed(5);
        using var a = randn(4);
        manual_seed(5);
        NumericsCheck.Run();
        using var b = randn(4);
        Assert.True(a.allclose(b, rtol: 0, atol: 0));
    }

    [Fact]
    public async Task EntryPoints_GuardRefuses_EveryOneThrowsNumericsException()
    {
        // A child process of this assembly (see Program), whose guard's self-check fails every time: each entry point
        // must refuse instead of computing on kernels the guard found wrong. NumericsSetup gives the child a cache folder
        // of its own, so nothing the guard remembers leaks.
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(typeof(GuardedEntryPoints).Assembly.Location);
        psi.ArgumentList.Add(GuardedEntryPoints.Command);
        psi.Environment[NumericsGuard.FaultVariable] = "always";
        psi.Environment[NumericsGuard.ModeVariable] = "auto";
        using var child = Process.Start(psi)!;
        var stdoutRead = child.StandardOutput.ReadToEndAsync();
        var stderrRead = child.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            try
            {
                await child.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                child.Kill(entireProcessTree: true);
                Assert.Fail("the child process did not finish within two minutes");
            }
        }
        var stdout = await stdoutRead;
        Assert.True(child.ExitCode == 0, $"exit {child.ExitCode}: {stdout}{await stderrRead}");
        var outcomes = stdout.Split('\n', StringSplitOptions.TrimEntries)
            .Where(l => l.StartsWith(GuardedEntryPoints.Prefix, StringComparison.Ordinal))
            .Select(l => l[GuardedEntryPoints.Prefix.Length..].Split(": ", 2))
            .ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
        Assert.Equal(GuardedEntryPoints.All.Select(e => e.Name), outcomes.Keys);
        Assert.All(outcomes, o => Assert.True(o.Value == GuardedEntryPoints.Refused, $"{o.Key} did not ask the numerics guard before computing: {o.Value}"));
    }
}
