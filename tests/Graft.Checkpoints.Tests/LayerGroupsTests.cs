using CsCheck;

namespace Graft.Checkpoints.Tests;

/// <summary>
/// <see cref="LayerGroups"/> replaced LINQ's GroupBy on the layer name in the planner, the name matcher and the diff:
/// it must group exactly as GroupBy did (layers in order of first appearance, members in order).
/// </summary>
public sealed class LayerGroupsTests
{
    private static readonly Gen<string> GenName =
        Gen.Char["ab.1"].Array[0, 6].Select(c => new string(c));

    [Fact]
    public void Of_GroupsLikeGroupByOnTheLayerName()
    {
        GenName.Array[0, 30].Sample(names =>
        {
            var groups = LayerGroups.Of(names.Length, i => names[i]);
            var expected = Enumerable.Range(0, names.Length).GroupBy(i => TensorName.LayerOf(names[i]), StringComparer.Ordinal).ToList();
            Assert.Equal(expected.Count, groups.Count);
            for (int l = 0; l < groups.Count; l++)
            {
                Assert.Equal(expected[l].ToArray(), groups.Members(l).ToArray());
                Assert.Equal(expected[l].First(), groups.First(l));
                var (start, length) = groups.Range(l);
                Assert.Equal(expected[l].ToArray(), groups.Order.Slice(start, length).ToArray());
            }
        });
    }

    [Fact]
    public void Of_NamesWithoutADot_AreOneLayer_AndAnEmptyHeaderNone()
    {
        var groups = LayerGroups.Of(3, i => new[] { "w", "conv.weight", "b" }[i]);
        Assert.Equal(2, groups.Count);
        Assert.Equal([0, 2], groups.Members(0).ToArray());
        Assert.Equal([1], groups.Members(1).ToArray());
        Assert.Equal(0, LayerGroups.Of(0, _ => "").Count);
    }
}
