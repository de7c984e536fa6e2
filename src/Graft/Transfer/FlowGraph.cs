using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>An ONNX node as the structure reader needs it.</summary>
/// <param name="Name">The node's name (or a made-up one when it has none).</param>
/// <param name="OpType">The operator.</param>
/// <param name="Inputs">Input value names (empty string: an omitted optional input).</param>
/// <param name="Outputs">Output value names.</param>
public sealed record FlowNode(string Name, string OpType, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs)
{
    /// <summary>BatchNormalization's <c>epsilon</c> attribute, when set.</summary>
    public double? Epsilon { get; init; }

    /// <summary>Gemm's <c>transA</c>, when set.</summary>
    public bool? TransA { get; init; }

    /// <summary>Gemm's <c>transB</c>, when set.</summary>
    public bool? TransB { get; init; }
}

/// <summary>
/// A computation graph for structure matching: nodes in topological order, which weight (initializer or Constant,
/// through Identity) stands behind a value, and the data-flow edges.
/// </summary>
public sealed class FlowGraph
{
    private readonly Func<int, int, string?> _weightAt;
    private readonly Dictionary<string, TensorInfo> _tensors;
    private readonly Dictionary<string, int> _producer = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<int>> _consumers = new(StringComparer.Ordinal);

    /// <summary>
    /// Makes a graph of <paramref name="nodes"/>; <paramref name="weightAt"/> names the weight tensor a node reads at an
    /// input slot (null when the input is computed), as the checkpoint lists it among <paramref name="tensors"/>.
    /// </summary>
    public FlowGraph(IReadOnlyList<FlowNode> nodes, Func<int, int, string?> weightAt, IReadOnlyList<TensorInfo> tensors)
    {
        Nodes = nodes ?? throw new ArgumentNullException(nameof(nodes));
        _weightAt = weightAt ?? throw new ArgumentNullException(nameof(weightAt));
        ArgumentNullException.ThrowIfNull(tensors);
        _tensors = new Dictionary<string, TensorInfo>(tensors.Count, StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            _tensors.TryAdd(t.Name, t);
        }
        for (int n = 0; n < nodes.Count; n++)
        {
            foreach (var o in nodes[n].Outputs)
            {
                _producer.TryAdd(o, n);
            }
            foreach (var i in nodes[n].Inputs)
            {
                if (i.Length == 0)
                {
                    continue;
                }
                if (!_consumers.TryGetValue(i, out var list))
                {
                    _consumers[i] = list = [];
                }
                if (list.Count == 0 || list[^1] != n)
                {
                    list.Add(n);
                }
            }
        }
    }

    /// <summary>A graph whose weights are named by the values that read them (hand-made graphs, tests).</summary>
    public static FlowGraph ByValueNames(IReadOnlyList<FlowNode> nodes, IReadOnlyList<TensorInfo> tensors)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        var names = new HashSet<string>(tensors.Select(t => t.Name), StringComparer.Ordinal);
        return new FlowGraph(nodes, (n, slot) => slot < nodes[n].Inputs.Count && names.Contains(nodes[n].Inputs[slot]) ? nodes[n].Inputs[slot] : null, tensors);
    }

    /// <summary>The nodes, in topological (file) order.</summary>
    public IReadOnlyList<FlowNode> Nodes { get; }

    /// <summary>The weight tensor node <paramref name="node"/> reads at input <paramref name="slot"/>, or null when that input is computed or absent.</summary>
    public string? WeightAt(int node, int slot) =>
        slot < Nodes[node].Inputs.Count && Nodes[node].Inputs[slot].Length > 0 && _weightAt(node, slot) is { } w && _tensors.ContainsKey(w) ? w : null;

    /// <summary>A weight tensor's shape, or null when the checkpoint does not hold it.</summary>
    public Shape? Shape(string tensor) => _tensors.TryGetValue(tensor, out var t) ? t.Shape : null;

    /// <summary>The node producing <paramref name="value"/>, or null for a graph input or weight.</summary>
    public int? Producer(string value) => _producer.TryGetValue(value, out var n) ? n : null;

    /// <summary>The nodes reading <paramref name="value"/>, in order.</summary>
    public IReadOnlyList<int> Consumers(string value) => _consumers.TryGetValue(value, out var l) ? l : [];
}
