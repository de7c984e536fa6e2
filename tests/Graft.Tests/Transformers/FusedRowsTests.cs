using Graft.Checkpoints;
using Graft.Transformers;
using static TorchSharp.torch;

namespace Graft.Tests.Transformers;

/// <summary>The fused-projection steps: split and concat of row blocks, their twins bit-exact to libtorch, shapes checked.</summary>
public sealed class FusedRowsTests
{
    private static readonly BlockMap Repeat = new("heads.repeat", "test", 0, blockSize: 2, sourceBlocks: 1, [[0], [0]]);

    [Fact]
    public void SplitRows_TakesTheRowBlock_TwinBitExact()
    {
        var split = new SplitRows("k", start: 4, count: 2, rows: 8);
        using var input = randn(8, 3, generator: new Generator(1));
        using var output = split.Apply(input);
        Assert.Equal(input.narrow(0, 4, 2).data<float>().ToArray(), output.contiguous().data<float>().ToArray());
        Assert.Equal(output.contiguous().data<float>().ToArray(), split.ApplyTwin<float>(input.data<float>().ToArray(), new Shape(8, 3)));
        Assert.Throws<ArgumentException>(() => split.OutputShape(new Shape(7, 3)));
    }

    /// <summary>q as is, k repeated, v scaled: each part through its own chain, stacked in order; the twin agrees bit for bit.</summary>
    [Fact]
    public void ConcatRows_EachPartItsChain_TwinBitExact()
    {
        // Parts whose outputs have other widths do not stack: refused when planned, with both shapes named.
        var ragged = new ConcatRows([
            new ConcatRows.Part("q", 4, Graft.Transforms.WeightTransform.Identity),
            new ConcatRows.Part("v", 4, new BlockMap("tile", "test", 1, 1, 3, [[0], [1], [2], [0], [1], [2]], 0.5)),
        ]);
        Assert.Contains("does not stack", Assert.Throws<ArgumentException>(() => ragged.OutputShape(new Shape(8, 3))).Message);
        var fixedConcat = new ConcatRows([
            new ConcatRows.Part("q", 4, Graft.Transforms.WeightTransform.Identity),
            new ConcatRows.Part("k", 2, Repeat),
            new ConcatRows.Part("v", 2, new BlockMap("rows", "test", 0, 1, 2, [[0], [1]], 0.5)),
        ]);
        using var input = randn(8, 3, generator: new Generator(2));
        Assert.Equal(new Shape(10, 3), fixedConcat.OutputShape(new Shape(8, 3)));
        var x = input.data<float>().ToArray();
        var y = fixedConcat.Apply(input).contiguous().data<float>().ToArray();
        Assert.Equal(x.AsSpan(0, 12).ToArray(), y.AsSpan(0, 12).ToArray());
        Assert.Equal(x.AsSpan(12, 6).ToArray(), y.AsSpan(12, 6).ToArray());
        Assert.Equal(x.AsSpan(12, 6).ToArray(), y.AsSpan(18, 6).ToArray());
        Assert.Equal(x.AsSpan(18, 6).ToArray().Select(v => v * 0.5f), y.AsSpan(24, 6).ToArray());
        Assert.True(fixedConcat.HasTwin);
        Assert.Equal(y, fixedConcat.ApplyTwin<float>(x, new Shape(8, 3)));
    }
}
