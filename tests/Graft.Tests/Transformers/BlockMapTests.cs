using Graft.Checkpoints;
using Graft.Transformers;
using static TorchSharp.torch;

namespace Graft.Tests.Transformers;

public sealed class BlockMapTests
{
    /// <summary>Copies and a scale: the managed twin is bit-exact to the libtorch definition (float32 and float64).</summary>
    [Theory]
    [InlineData(0, 1.0)]
    [InlineData(1, 0.5)]
    [InlineData(1, 1.0 / 3)]
    public void Twin_CopiesAndScale_BitExactToTorch(int axis, double scale)
    {
        var map = new BlockMap("tile", "test", axis, blockSize: 2, sourceBlocks: 3, [[0], [1], [2], [0], [1], [2], [2]], scale);
        Assert.True(map.HasTwin);
        using var input = randn(axis == 0 ? 6 : 4, axis == 0 ? 5 : 6, generator: new Generator(7));
        var shape = new Shape(input.shape);
        var f = input.contiguous().data<float>().ToArray();
        var expected = map.Apply(input).contiguous().data<float>().ToArray();
        Assert.Equal(expected, map.ApplyTwin<float>(f, shape));
        using var d = input.to(ScalarType.Float64);
        Assert.Equal(map.Apply(d).contiguous().data<double>().ToArray(), map.ApplyTwin<double>(d.contiguous().data<double>().ToArray(), shape));
    }

    /// <summary>Group means against a float64 computation by hand; a mean has no twin (libtorch's summation order).</summary>
    [Fact]
    public void Apply_GroupMeans_MatchHandMeans()
    {
        var map = new BlockMap("heads.group-mean", "test", 0, blockSize: 2, sourceBlocks: 4, [[0, 1], [2, 3], [0, 1, 2, 3]]);
        Assert.False(map.HasTwin);
        using var input = randn(8, 3, dtype: ScalarType.Float64, generator: new Generator(3));
        var x = input.data<double>().ToArray();
        using var output = map.Apply(input);
        Assert.Equal([6L, 3], output.shape);
        var y = output.contiguous().data<double>().ToArray();
        double At(int block, int r, int c) => x[(block * 2 + r) * 3 + c];
        for (int r = 0; r < 2; r++)
        {
            for (int c = 0; c < 3; c++)
            {
                Assert.Equal((At(0, r, c) + At(1, r, c)) / 2, y[(0 * 2 + r) * 3 + c], 14);
                Assert.Equal((At(2, r, c) + At(3, r, c)) / 2, y[(1 * 2 + r) * 3 + c], 14);
                Assert.Equal((At(0, r, c) + At(1, r, c) + At(2, r, c) + At(3, r, c)) / 4, y[(2 * 2 + r) * 3 + c], 14);
            }
        }
    }

    [Fact]
    public void OutputShape_WrongBlockCount_NamesBothShapes()
    {
        var map = new BlockMap("tile", "test", 0, 8, 4, [[0], [1]]);
        var e = Assert.Throws<ArgumentException>(() => map.OutputShape(new Shape(24, 3)));
        Assert.Contains("(24, 3)", e.Message);
    }
}
