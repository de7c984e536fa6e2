using Graft.Checkpoints;
using Graft.Checkpoints.Onnx;

namespace Graft.Transfer;

/// <summary>The computation graph a source checkpoint carries (an ONNX model's), for matching by structure.</summary>
internal static class SourceGraph
{
    /// <summary>The graph of <paramref name="source"/>, or null when it has none (a state dict).</summary>
    internal static FlowGraph? Of(ICheckpointReader source) => source is OnnxReader onnx ? Of(onnx) : null;

    /// <summary>An ONNX model's main graph: each weight named as the reader lists it for the node and slot reading it.</summary>
    internal static FlowGraph Of(OnnxReader reader)
    {
        var graph = OnnxGraph.Read(reader);
        var nodes = new List<FlowNode>(graph.Nodes.Count);
        foreach (var n in graph.Nodes)
        {
            nodes.Add(new FlowNode(n.Name.Length > 0 ? n.Name : $"{n.OpType}_{n.Index}", n.OpType, n.Inputs, n.Outputs)
            {
                Epsilon = n.Attributes.TryGetValue("epsilon", out var e) && e.Float is { } eps ? eps : null,
                TransA = n.Attributes.ContainsKey("transA") ? n.Int("transA", 0) == 1 : null,
                TransB = n.Attributes.ContainsKey("transB") ? n.Int("transB", 0) == 1 : null,
            });
        }
        return new FlowGraph(nodes, (node, slot) => graph.TensorOf(new WeightUse(graph.Nodes[node].Index, slot)), reader.Tensors);
    }
}
