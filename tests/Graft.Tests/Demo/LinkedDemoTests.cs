using Graft.Demo;

namespace Graft.Tests.Demo;

public class LinkedDemoTests
{
    [Fact]
    public void Run_QuestionNetworkAt300x300_ReportsCountShapeAndGradient()
    {
        using var output = new StringWriter();

        var result = LinkedDemo.Run(output);

        Assert.Equal(4_640, result.ParameterCount);
        Assert.Equal(new long[] { 1, 64, 300, 300 }, result.OutputShape);
        Assert.Equal(new[] { "conv_1.bias", "conv_1.weight" }, result.StateDictKeys);
        Assert.True(result.WeightGradNorm > 0 && double.IsFinite(result.WeightGradNorm));
        Assert.True(result.BiasGradNorm > 0 && double.IsFinite(result.BiasGradNorm));
        var text = output.ToString();
        Assert.Contains("4,640", text);
        Assert.Contains("(1, 64, 300, 300)", text);
    }
}
