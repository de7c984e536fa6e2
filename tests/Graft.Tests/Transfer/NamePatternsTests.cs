using System.Diagnostics;
using System.Text.RegularExpressions;
using CsCheck;
using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Tests.Transfer;

/// <summary>
/// User patterns against tensor names that a hostile checkpoint chooses: globs in linear time, regexes on the
/// non-backtracking engine, and a regex that still times out refused as a plan error (exit 2), never an internal one.
/// </summary>
public class NamePatternsTests
{
    private static readonly string LongName = new('x', 10_000);

    private static TensorInfo T(string name, params long[] shape)
    {
        var s = new Shape(shape);
        return new TensorInfo(name, DType.F32, s, s.ElementCount * 4);
    }

    [Theory]
    [InlineData("conv1.*", "conv1.weight", true)]
    [InlineData("conv1.*", "conv10.weight", false)]
    [InlineData("*.weight", "layer1.0.conv1.weight", true)]
    [InlineData("layer?.*", "layer1.bias", true)]
    [InlineData("layer?.*", "layer12.bias", false)]
    [InlineData("*", "", true)]
    [InlineData("", "", true)]
    [InlineData("", "a", false)]
    [InlineData("a*b*c", "abbbcbc", true)]
    [InlineData("a*b*c", "abbbcb", false)]
    [InlineData("fc.[0]", "fc.[0]", true)]
    [InlineData("fc.+", "fc..", false)]
    public void GlobMatches_Cases_MatchLikeShellGlobs(string glob, string name, bool expected) =>
        Assert.Equal(expected, NamePatterns.GlobMatches(glob, name));

    [Fact]
    public void GlobMatches_AnyGlobAndName_AgreesWithTheRegexTranslation()
    {
        var alphabet = Gen.Char["ab.*?"];
        Gen.Select(Gen.String[alphabet, 0, 8], Gen.String[Gen.Char["ab."], 0, 12]).Sample((glob, name) =>
        {
            var regex = "^" + Regex.Escape(glob).Replace(@"\*", ".*", StringComparison.Ordinal).Replace(@"\?", ".", StringComparison.Ordinal) + "$";
            Assert.Equal(Regex.IsMatch(name, regex), NamePatterns.GlobMatches(glob, name));
        }, iter: 20_000);
    }

    [Fact]
    public void GlobMatches_ManyStarsOnTenThousandCharacterName_AnswersAtOnce()
    {
        var clock = Stopwatch.StartNew();
        Assert.False(new TensorRule("*x*x*y").Matches(LongName));
        Assert.True(new TensorRule("*x*x*x").Matches(LongName));
        Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(500), $"took {clock.Elapsed}");
    }

    [Fact]
    public void Plan_SkipGlobOnTenThousandCharacterName_DoesNotTimeOut()
    {
        var policy = TransferPolicy.Default with { Rules = [new TensorRule("*x*x*y") { Skip = true }] };
        var plan = TransferPlanner.Plan([T(LongName, 2)], [T(LongName, 2)], policy);
        Assert.Equal(TargetStatus.Copied, plan.Targets.Single().Status);
    }

    [Fact]
    public void Plan_NestedRepetitionRenameOnLongName_RunsOnTheLinearEngine()
    {
        var policy = TransferPolicy.Default with { Renames = [RenameRule.Parse("^(x+x+)+y$=z")] };
        var clock = Stopwatch.StartNew();
        var plan = TransferPlanner.Plan([T(LongName, 2)], [T(LongName, 2)], policy);
        Assert.Equal(MatchKind.Exact, plan.Targets.Single().Match!.Kind);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"took {clock.Elapsed}");
    }

    [Fact]
    public void Plan_RenameWithGroupsOnTheLinearEngine_StillReplaces()
    {
        var policy = TransferPolicy.Default with { Renames = [RenameRule.Parse(@"^features\.(\d+)\.=block$1.")] };
        var plan = TransferPlanner.Plan([T("features.3.weight", 2)], [T("block3.weight", 2)], policy);
        Assert.Equal("features.3.weight", plan.Targets.Single().Source!.Name);
    }

    [Fact]
    public void Plan_BacktrackingRenameThatTimesOut_IsAPlanErrorNamingTheOption()
    {
        // A lookahead needs the backtracking engine, whose match then times out on the long name.
        var policy = TransferPolicy.Default with { Renames = [RenameRule.Parse("^(x+x+)+(?=y)=z")] };
        var e = Assert.Throws<TransferPlanException>(() => TransferPlanner.Plan([T(LongName, 2)], [T(LongName, 2)], policy));
        Assert.Contains("--rename", e.Message);
        Assert.Contains("^(x+x+)+(?=y)", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}
