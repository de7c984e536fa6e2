using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Tests.Transfer;

public class TensorRuleTests
{
    [Fact]
    public void Parse_EveryKey_SetsItsField()
    {
        var r = TensorRule.Parse("conv*.weight:out-shrink=largest-l2,new-channels=kaiming,in-channels=sum,kernel=bicubic,head=keep-first,skip,reinit=false,layout=conv2d/4,structural=false");
        Assert.Equal("conv*.weight", r.Pattern);
        Assert.Equal(OutShrinkRule.LargestL2, r.OutShrink);
        Assert.Equal(NewChannelRule.KaimingNormal, r.NewChannels);
        Assert.Equal(InChannelRule.Sum, r.InChannels);
        Assert.Equal(KernelRule.Bicubic, r.Kernel);
        Assert.Equal(HeadRule.KeepFirst, r.Head);
        Assert.True(r.Skip);
        Assert.False(r.Reinit);
        Assert.Equal(Layout.Conv(2, 4), r.Layout);
        Assert.False(r.Structural);
    }

    [Theory]
    [InlineData("conv1", "expected GLOB:key=value")]
    [InlineData("*:colour=red", "unknown key 'colour'")]
    [InlineData("*:skip=maybe", "'maybe' is not true or false")]
    [InlineData("*:layout=conv9d", "unknown layout 'conv9d'")]
    [InlineData("*:layout=conv2d/0", "should look like conv2d")]
    public void Parse_BadText_InvalidInputNamingTheTextNotACommandLineOption(string text, string what)
    {
        var e = Assert.Throws<InvalidInputException>(() => TensorRule.Parse(text));
        Assert.Contains($"'{text}'", e.Message, StringComparison.Ordinal);
        Assert.Contains(what, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("--", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_BadWordForAKey_InvalidInputListingTheWords()
    {
        var e = Assert.Throws<InvalidInputException>(() => TensorRule.Parse("*:kernel=stretch"));
        Assert.Contains("stretch", e.Message, StringComparison.Ordinal);
        Assert.Contains("bilinear", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_Empty_IsACallerMistakeNotInvalidInput()
    {
        // Null or empty text never comes from a person's rule: the caller skipped its own check.
        var e = Assert.ThrowsAny<ArgumentException>(() => TensorRule.Parse(""));
        Assert.IsNotType<InvalidInputException>(e);
    }
}
