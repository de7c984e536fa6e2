using Graft.Checkpoints;

namespace Graft.Checkpoints.Tests;

public class TensorNameTests
{
    [Theory]
    [InlineData("layer1.0.conv1.weight", "layer1.0.conv1", "weight", true)]
    [InlineData("bn.running_var", "bn", "running_var", false)]
    [InlineData("scale", "", "scale", false)]
    [InlineData("weight", "", "weight", true)]
    [InlineData("a.", "a", "", false)]
    [InlineData(".bias", "", "bias", false)]
    public void Parse_SplitsOnTheLastDot(string full, string layer, string member, bool isWeight)
    {
        var n = TensorName.Parse(full);
        Assert.Equal((full, layer, member, isWeight), (n.Full, n.Layer, n.Member, n.IsLayerWeight));
        Assert.Equal(layer, TensorName.LayerOf(full));
        Assert.Equal(member, TensorName.MemberOf(full));
        Assert.Equal(full, n.ToString());
    }

    [Fact]
    public void Equality_IsOrdinalOnTheFullName()
    {
        Assert.Equal(TensorName.Parse("a.b"), TensorName.Parse("a.b"));
        Assert.NotEqual(TensorName.Parse("a.b"), TensorName.Parse("A.b"));
    }
}
