using System.Collections.ObjectModel;

namespace Graft.Checkpoints.Onnx;

/// <summary>
/// The main graph of an ONNX model as nodes and data-flow edges: which node produces and which nodes consume every
/// value, and, for every weight (an initializer or a <c>Constant</c> node's tensor), the node and input slot it feeds
/// (its role: Conv W is slot 1, BatchNormalization scale/B/mean/var are slots 1–4, …), looking through <c>Identity</c>
/// nodes. Read once when the model is opened, from the protobuf structure only: no weight bytes are read to build it.
/// </summary>
/// <remarks>
/// <para>Only the main graph is indexed: nodes inside subgraphs (<c>If</c>/<c>Loop</c>/<c>Scan</c> attributes) are not
/// listed, and <see cref="HasSubgraphs"/> says when there are any (their implicit uses of outer values are not seen).</para>
/// <para>Names: a value is what an ONNX node input or output names. A <em>weight</em> is a stored tensor: an
/// initializer (by its name) or a <c>Constant</c> node's <c>value</c> (by the node's output name) when it is a
/// floating-point tensor of rank 1 or more (scalar and integer Constants, such as Clip bounds or Reshape shapes, are
/// ordinary nodes). The reader's
/// <see cref="OnnxReader.Tensors"/> are the weights as their consumers see them, one per consumer, so that every
/// consumer can be given its own value (see <see cref="TensorOf"/> and <see cref="ConsumerOf"/>).</para>
/// </remarks>
public sealed class OnnxGraph
{
    private readonly Dictionary<string, int> _producer;
    private readonly Dictionary<string, List<int>> _consumers;
    private readonly HashSet<string> _weights;
    private readonly Dictionary<string, WeightUse> _consumerOf;
    private readonly Dictionary<WeightUse, string> _tensorOf;
    private static readonly IReadOnlyList<OnnxNode> NoNodes = Array.Empty<OnnxNode>();

    internal OnnxGraph(string path, List<OnnxNode> nodes, List<string> inputs, List<string> outputs, IReadOnlyCollection<string> weights,
        bool hasSubgraphs)
    {
        Nodes = nodes.AsReadOnly();
        _weights = new HashSet<string>(weights, StringComparer.Ordinal);
        GraphInputs = inputs.Where(i => !_weights.Contains(i)).ToList().AsReadOnly();
        GraphOutputs = outputs.AsReadOnly();
        HasSubgraphs = hasSubgraphs;
        _producer = new Dictionary<string, int>(nodes.Count * 2, StringComparer.Ordinal);
        _consumers = new Dictionary<string, List<int>>(nodes.Count * 2, StringComparer.Ordinal);
        foreach (var n in nodes)
        {
            foreach (var o in n.Outputs)
            {
                if (o.Length == 0)
                {
                    continue;
                }
                if (_producer.TryGetValue(o, out var other))
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null,
                        $"value '{o}' is the output of two nodes ({Nodes[other].Describe()} and {n.Describe()}); ONNX graphs assign each value once.");
                }
                if (_weights.Contains(o) && n.OpType != "Constant")
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null,
                        $"value '{o}' is both an initializer and the output of {n.Describe()}; ONNX graphs assign each value once.");
                }
                _producer.Add(o, n.Index);
            }
        }
        foreach (var n in nodes)
        {
            foreach (var i in n.Inputs)
            {
                if (i.Length == 0)
                {
                    continue;
                }
                if (_producer.TryGetValue(i, out var p) && p >= n.Index)
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null,
                        $"{n.Describe()} reads '{i}' before {Nodes[p].Describe()} produces it; ONNX requires nodes in topological order.");
                }
                if (!_consumers.TryGetValue(i, out var list))
                {
                    _consumers[i] = list = new List<int>(1);
                }
                if (list.Count == 0 || list[^1] != n.Index)
                {
                    list.Add(n.Index);
                }
            }
        }
        (_consumerOf, _tensorOf) = NameUses(weights);
    }

    /// <summary>The nodes of the main graph, in file order (ONNX requires topological order; the reader checks it).</summary>
    public IReadOnlyList<OnnxNode> Nodes { get; }

    /// <summary>The graph's inputs that are not weights (older models list every initializer as an input too).</summary>
    public IReadOnlyList<string> GraphInputs { get; }

    /// <summary>The graph's outputs.</summary>
    public IReadOnlyList<string> GraphOutputs { get; }

    /// <summary>True when some node carries a subgraph (control flow), whose nodes this index does not list.</summary>
    public bool HasSubgraphs { get; }

    /// <summary>The graph of an open model (the same instance as <see cref="OnnxReader.Graph"/>).</summary>
    public static OnnxGraph Read(OnnxReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return reader.Graph;
    }

    /// <summary>True when <paramref name="name"/> is a weight: an initializer or a <c>Constant</c> node's tensor.</summary>
    public bool IsWeight(string name) => _weights.Contains(name);

    /// <summary>
    /// The weight behind a value: the value itself when it is an initializer or a <c>Constant</c>'s output, or what an
    /// <c>Identity</c> chain passes on; null when the value is computed (or a graph input).
    /// </summary>
    public string? WeightOf(string valueName)
    {
        ArgumentNullException.ThrowIfNull(valueName);
        var v = valueName;
        // Topological order (checked) makes Identity chains acyclic; the bound is a second guard.
        for (var steps = 0; steps <= Nodes.Count; steps++)
        {
            if (_weights.Contains(v))
            {
                return v;
            }
            if (!_producer.TryGetValue(v, out var p) || Nodes[p].OpType != "Identity" || Nodes[p].Inputs.Count == 0)
            {
                return null;
            }
            v = Nodes[p].Inputs[0];
        }
        return null;
    }

    /// <summary>
    /// Every (node, input slot) that consumes <paramref name="valueName"/>, directly or through <c>Identity</c> nodes
    /// (which are not uses themselves), in node order. For a weight's name: all its roles.
    /// </summary>
    public IReadOnlyList<WeightUse> UsesOf(string valueName)
    {
        ArgumentNullException.ThrowIfNull(valueName);
        var uses = new List<WeightUse>();
        var pending = new Stack<string>();
        pending.Push(valueName);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (pending.Count > 0)
        {
            var v = pending.Pop();
            if (!seen.Add(v) || !_consumers.TryGetValue(v, out var list))
            {
                continue;
            }
            foreach (var c in list)
            {
                var node = Nodes[c];
                for (var slot = 0; slot < node.Inputs.Count; slot++)
                {
                    if (node.Inputs[slot] != v)
                    {
                        continue;
                    }
                    if (node.OpType == "Identity")
                    {
                        foreach (var o in node.Outputs)
                        {
                            pending.Push(o);
                        }
                    }
                    else
                    {
                        uses.Add(new WeightUse(c, slot));
                    }
                }
            }
        }
        uses.Sort(static (a, b) => a.Node != b.Node ? a.Node.CompareTo(b.Node) : a.Slot.CompareTo(b.Slot));
        return uses;
    }

    /// <summary>The node producing a value; null for graph inputs and weights (a <c>Constant</c> holding a weight is part of it).</summary>
    public OnnxNode? Producer(string valueName)
    {
        ArgumentNullException.ThrowIfNull(valueName);
        return !_weights.Contains(valueName) && _producer.TryGetValue(valueName, out var p) ? Nodes[p] : null;
    }

    /// <summary>The nodes reading a value directly (each once, in node order), Identity nodes included.</summary>
    public IReadOnlyList<OnnxNode> Consumers(string valueName)
    {
        ArgumentNullException.ThrowIfNull(valueName);
        return _consumers.TryGetValue(valueName, out var list) ? list.Select(i => Nodes[i]).ToList() : NoNodes;
    }

    /// <summary>
    /// The name under which the reader lists the weight consumed at <paramref name="use"/> (see
    /// <see cref="OnnxReader.Tensors"/>); null when that input is not a weight.
    /// </summary>
    public string? TensorOf(WeightUse use) => _tensorOf.TryGetValue(use, out var n) ? n : null;

    /// <summary>
    /// The one (node, slot) consuming a tensor the reader lists; null for a weight that no node consumes (or a name
    /// the reader does not list).
    /// </summary>
    public WeightUse? ConsumerOf(string tensorName)
    {
        ArgumentNullException.ThrowIfNull(tensorName);
        return _consumerOf.TryGetValue(tensorName, out var u) ? u : null;
    }

    /// <summary>The (node, slot) a use names, resolved.</summary>
    public string InputOf(WeightUse use) => Nodes[use.Node].Inputs[use.Slot];

    /// <summary>
    /// Gives every weight use (a non-Identity node's input slot whose value is a weight, through Identity) one name:
    /// the value name the node reads (an initializer's name, a Constant's output, or an Identity's output, which in a
    /// PyTorch export is the parameter's own name). When several uses read the same value, the first keeps it and
    /// the others get <c>value@node</c> (node name, or <c>#index</c> when it has none; <c>:slot</c> when one node reads it twice).
    /// </summary>
    private (Dictionary<string, WeightUse>, Dictionary<WeightUse, string>) NameUses(IReadOnlyCollection<string> weights)
    {
        var consumerOf = new Dictionary<string, WeightUse>(StringComparer.Ordinal);
        var tensorOf = new Dictionary<WeightUse, string>();
        var taken = new HashSet<string>(weights, StringComparer.Ordinal);
        taken.UnionWith(_producer.Keys);
        foreach (var n in Nodes)
        {
            if (n.OpType == "Identity")
            {
                continue;
            }
            for (var slot = 0; slot < n.Inputs.Count; slot++)
            {
                var v = n.Inputs[slot];
                if (v.Length == 0 || WeightOf(v) is null)
                {
                    continue;
                }
                var use = new WeightUse(n.Index, slot);
                string name;
                if (!consumerOf.ContainsKey(v))
                {
                    name = v;
                }
                else
                {
                    var label = n.Name.Length > 0 ? n.Name : "#" + n.Index.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    name = $"{v}@{label}";
                    if (n.Inputs.Count(i => i == v) > 1)
                    {
                        name += ":" + slot.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    }
                    var k = 2;
                    var baseName = name;
                    while (taken.Contains(name) || consumerOf.ContainsKey(name))
                    {
                        name = baseName + "#" + (k++).ToString(System.Globalization.CultureInfo.InvariantCulture);
                    }
                }
                taken.Add(name);
                consumerOf[name] = use;
                tensorOf[use] = name;
            }
        }
        return (consumerOf, tensorOf);
    }
}

/// <summary>
/// One node of an ONNX graph: its position in file order, name (may be empty), operator, inputs and outputs as stored
/// (value names; an empty name is an omitted optional input), and attributes by name.
/// </summary>
public sealed record OnnxNode(int Index, string Name, string OpType, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, OnnxAttribute> Attributes)
{
    /// <summary>The operator's domain; empty for the default ONNX domain.</summary>
    public string Domain { get; init; } = "";

    /// <summary>The attribute's integer, or <paramref name="fallback"/> when absent (ONNX attribute defaults).</summary>
    public long Int(string attribute, long fallback) => Attributes.TryGetValue(attribute, out var a) && a.Int is { } v ? v : fallback;

    /// <summary>The attribute's float, or <paramref name="fallback"/> when absent (e.g. BatchNormalization epsilon 1e-5).</summary>
    public float Float(string attribute, float fallback) => Attributes.TryGetValue(attribute, out var a) && a.Float is { } v ? v : fallback;

    /// <summary>The attribute's integers, or null when absent.</summary>
    public IReadOnlyList<long>? Ints(string attribute) => Attributes.TryGetValue(attribute, out var a) ? a.Ints : null;

    /// <summary>For messages: <c>node 12 'Conv_12' (Conv)</c>.</summary>
    public string Describe() => Name.Length > 0 ? $"node {Index} '{Name}' ({OpType})" : $"node {Index} ({OpType})";

    internal static readonly IReadOnlyDictionary<string, OnnxAttribute> NoAttributes =
        new ReadOnlyDictionary<string, OnnxAttribute>(new Dictionary<string, OnnxAttribute>());
}

/// <summary>
/// One attribute of a node, with the value that its kind carries (the others null): <c>i</c>, <c>f</c>, <c>ints</c>,
/// <c>s</c> (decoded as UTF-8), <c>floats</c>. Tensors, graphs and other kinds are flagged, not decoded (a
/// <c>Constant</c>'s tensor is listed by the reader as a weight).
/// </summary>
public sealed record OnnxAttribute(string Name, long? Int, float? Float, IReadOnlyList<long>? Ints, string? String)
{
    /// <summary>The <c>floats</c> value, when the attribute has one.</summary>
    public IReadOnlyList<float>? Floats { get; init; }

    /// <summary>True when the attribute holds a tensor (<c>t</c> or <c>tensors</c>; e.g. a <c>Constant</c>'s <c>value</c>).</summary>
    public bool HasTensor { get; init; }

    /// <summary>True when the attribute holds a subgraph (<c>g</c> or <c>graphs</c>).</summary>
    public bool HasGraph { get; init; }
}

/// <summary>Where a weight is consumed: a node (its <see cref="OnnxNode.Index"/>) and an input slot (0-based).</summary>
public readonly record struct WeightUse(int Node, int Slot);
