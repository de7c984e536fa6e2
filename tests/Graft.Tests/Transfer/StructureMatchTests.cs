using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Tests.Transfer;

/// <summary>
/// Issue 19: structure is read from a graph's data flow (not node order) and from a state dict's names, and units are
/// paired by place; a source block with no place is reported. Headers only.
/// </summary>
public class StructureMatchTests
{
    private static TensorInfo T(string name, params long[] shape)
    {
        var s = new Shape(shape);
        return new TensorInfo(name, DType.F32, s, s.ElementCount * 4);
    }

    /// <summary>A CNTK-like ResNet graph: stem, one identity block, a projecting block whose shortcut conv comes first in node order, one more identity block.</summary>
    private static (FlowGraph Graph, List<TensorInfo> Tensors) CntkLike()
    {
        var tensors = new List<TensorInfo>();
        var nodes = new List<FlowNode>();
        int id = 0;
        string ConvBn(string x, long o, long i, long k)
        {
            var n = id++;
            tensors.Add(T($"W{n}", o, i, k, k));
            foreach (var v in new[] { "s", "b", "m", "v" })
            {
                tensors.Add(T($"{v}{n}", o));
            }
            nodes.Add(new FlowNode($"Conv{n}", "Conv", [x, $"W{n}"], [$"c{n}"]));
            nodes.Add(new FlowNode($"BN{n}", "BatchNormalization", [$"c{n}", $"s{n}", $"b{n}", $"m{n}", $"v{n}"], [$"bn{n}"]) { Epsilon = 1e-5 });
            return $"bn{n}";
        }
        string Relu(string x)
        {
            nodes.Add(new FlowNode($"Relu_{x}", "Relu", [x], [$"r_{x}"]));
            return $"r_{x}";
        }
        string Add(string a, string b, string name)
        {
            nodes.Add(new FlowNode(name, "Add", [a, b], [$"{name}_out"]));
            return Relu($"{name}_out");
        }
        var x = Relu(ConvBn("input", 8, 3, 3));
        // Identity block.
        var m = ConvBn(Relu(ConvBn(x, 8, 8, 3)), 8, 8, 3);
        x = Add(x, m, "Join1");
        // Projecting block: the shortcut conv first in node order (as CNTK writes it).
        var sc = ConvBn(x, 16, 8, 1);
        m = ConvBn(Relu(ConvBn(x, 16, 8, 3)), 16, 16, 3);
        x = Add(m, sc, "Join2");
        // One more identity block than the target has.
        m = ConvBn(Relu(ConvBn(x, 16, 16, 3)), 16, 16, 3);
        Add(m, x, "Join3");
        return (FlowGraph.ByValueNames(nodes, tensors), tensors);
    }

    private static List<TensorInfo> TorchvisionLike()
    {
        var t = new List<TensorInfo>();
        void ConvBn(string conv, string bn, long o, long i, long k)
        {
            t.Add(T(conv + ".weight", o, i, k, k));
            foreach (var v in new[] { "weight", "bias", "running_mean", "running_var" })
            {
                t.Add(T($"{bn}.{v}", o));
            }
            var s = new Shape();
            t.Add(new TensorInfo($"{bn}.num_batches_tracked", DType.I64, s, 8));
        }
        ConvBn("conv1", "bn1", 8, 1, 3);
        ConvBn("layer1.0.conv1", "layer1.0.bn1", 8, 8, 3);
        ConvBn("layer1.0.conv2", "layer1.0.bn2", 8, 8, 3);
        ConvBn("layer2.0.conv1", "layer2.0.bn1", 16, 8, 3);
        ConvBn("layer2.0.conv2", "layer2.0.bn2", 16, 16, 3);
        ConvBn("layer2.0.downsample.0", "layer2.0.downsample.1", 16, 8, 1);
        t.Add(T("fc.weight", 10, 16));
        t.Add(T("fc.bias", 10));
        return t;
    }

    [Fact]
    public void FromGraph_ShortcutFoundByDataFlow_NotNodeOrder()
    {
        var (graph, _) = CntkLike();
        var s = NetStructure.FromGraph(graph);
        Assert.Equal(["Conv0", "Conv1", "Conv2", "Conv4", "Conv5", "Conv3", "Conv6", "Conv7"], s.Units.Select(u => u.Name));
        Assert.True(s.Units.Single(u => u.Name == "Conv3").Shortcut);
        Assert.All(s.Units, u => Assert.NotNull(u.Norm));
        Assert.Equal([1, 2], s.Stages!.Select(st => st.Count));
        Assert.Single(s.Before);
    }

    [Fact]
    public void Align_ExtraSourceBlock_PairsWhatFitsAndReportsTheBlock()
    {
        var (graph, _) = CntkLike();
        var (pairs, notes) = StructureMatcher.Align(NetStructure.FromGraph(graph), NetStructure.FromStateDict(TorchvisionLike()));
        var byTarget = pairs.ToDictionary(p => p.Target.Name, p => p.Source.Name);
        Assert.Equal("Conv0", byTarget["conv1"]);
        Assert.Equal("Conv1", byTarget["layer1.0.conv1"]);
        Assert.Equal("Conv2", byTarget["layer1.0.conv2"]);
        Assert.Equal("Conv4", byTarget["layer2.0.conv1"]);
        Assert.Equal("Conv5", byTarget["layer2.0.conv2"]);
        Assert.Equal("Conv3", byTarget["layer2.0.downsample.0"]);
        Assert.Equal(6, pairs.Count);
        Assert.Contains(notes, n => n.Contains("Join3") && n.Contains("no place"));
        Assert.Contains(notes, n => n.Contains("fc") && n.Contains("no linear layer"));
    }

    [Fact]
    public void FromStateDict_RolesFromNames_ConvBatchNormUnitsAndShortcut()
    {
        var s = NetStructure.FromStateDict(TorchvisionLike());
        Assert.Equal(7, s.Units.Count);
        Assert.Equal("layer2.0.downsample.1", s.Units.Single(u => u.Name == "layer2.0.downsample.0").Norm!.Layer);
        Assert.Equal(UnitKind.Linear, s.Units[^1].Kind);
        var roles = TensorRoles.FromNames(TorchvisionLike());
        Assert.Equal(TensorRole.NormVar, roles["layer1.0.bn1.running_var"].Role);
        Assert.Equal(TensorRole.HeadWeight, roles["fc.weight"].Role);
        Assert.Equal(TensorRole.ConvWeight, roles["layer2.0.downsample.0.weight"].Role);
    }

    [Fact]
    public void Align_TwoEquallyGoodPlacesInTheMiddle_RefusedNotGuessed()
    {
        // Source: a stem, three equal 8→8 convs, a head conv; the target has two 8→8 convs. Which two of the three they
        // are is told by nothing: counted from the input they are b and c, from the output c and d. Refused.
        List<TensorInfo> src = [T("a.weight", 8, 3, 3, 3), T("b.weight", 8, 8, 3, 3), T("c.weight", 8, 8, 3, 3), T("d.weight", 8, 8, 3, 3), T("e.weight", 16, 8, 3, 3)];
        List<TensorInfo> tgt = [T("p.weight", 8, 1, 3, 3), T("r.weight", 8, 8, 3, 3), T("s.weight", 8, 8, 3, 3), T("t.weight", 16, 8, 3, 3)];
        var (pairs, notes) = StructureMatcher.Align(NetStructure.FromStateDict(src), NetStructure.FromStateDict(tgt));
        Assert.Equal(["p←a", "t←e"], pairs.Select(p => $"{p.Target.Name}←{p.Source.Name}").Order());
        Assert.Contains(notes, n => n.Contains("two pairings fit equally") && n.Contains("r (fits b") && n.Contains("s (fits c"));
    }
}
