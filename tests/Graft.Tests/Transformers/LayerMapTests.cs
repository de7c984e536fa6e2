using Graft.Checkpoints;
using Graft.Transformers;

namespace Graft.Tests.Transformers;

/// <summary>The <c>--layers</c> grammar: blocks in target order, and errors that name the bad token.</summary>
public sealed class LayerMapTests
{
    [Fact]
    public void Parse_Solar_TwoOverlappingRanges()
    {
        var map = LayerMap.Parse("0-23, 8-31");
        Assert.Equal(48, map.Blocks.Count);
        Assert.Equal(Enumerable.Range(0, 24).Concat(Enumerable.Range(8, 24)), map.Blocks.Select(b => b.Source));
        Assert.DoesNotContain(map.Blocks, b => b.Identity);
    }

    [Fact]
    public void Parse_IdentityBlocks()
    {
        var map = LayerMap.Parse("0-3,3=id,4-7,6-7=id");
        Assert.Equal([0, 1, 2, 3, 3, 4, 5, 6, 7, 6, 7], map.Blocks.Select(b => b.Source));
        Assert.Equal([4, 9, 10], map.Blocks.Select((b, i) => (b, i)).Where(x => x.b.Identity).Select(x => x.i));
    }

    [Theory]
    [InlineData("0-3,,4-7", "empty token")]
    [InlineData("0-3,x,4", "'x'")]
    [InlineData("0-3,5-2", "'5-2' runs backwards")]
    [InlineData("0-3,3=copy", "'3=copy'")]
    [InlineData("0-3-5", "'0-3-5'")]
    [InlineData("-1", "'-1'")]
    [InlineData("", "empty")]
    public void Parse_BadToken_InvalidInputNamingIt(string text, string expected)
    {
        var e = Assert.Throws<InvalidInputException>(() => LayerMap.Parse(text));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void FunctionProblems_OnlyEveryBlockOnceInOrderPlusIdentities_KeepsIt()
    {
        Assert.Empty(LayerMap.Parse("0-1,1=id,2-3,0=id").FunctionProblems(4));
        Assert.Contains("applied more than once", Assert.Single(LayerMap.Parse("0-2,1-3").FunctionProblems(4)));
        Assert.Contains("3 not used", Assert.Single(LayerMap.Parse("0-2").FunctionProblems(4)));
        Assert.Contains("out of order", Assert.Single(LayerMap.Parse("1,0,2,3").FunctionProblems(4)));
    }
}
