using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft.Transfer;

/// <summary>
/// Reads a live module's computation graph by one forward pass, for matching by structure when the module's names say
/// nothing (numbered or odd names, a shortcut declared before the main path): every leaf module called becomes a node
/// (convolutions <c>Conv</c>, BatchNorms <c>BatchNormalization</c>, <c>Linear</c> a <c>Gemm</c> with transB = 1, others
/// under their type name), its weights named as the module's state dict names them, and each node's input is linked to
/// the value that produced it. Links are found by value, not by tensor object, so in-place operations (<c>add_</c>,
/// <c>relu_</c>) cannot mislead them: a leaf's input is a traced value, or that value through a functional ReLU,
/// flatten or global mean, or the sum of two traced values (a residual join, an <c>Add</c> node, optionally followed by
/// a ReLU).
/// </summary>
/// <remarks>
/// As <see cref="ChannelTracer"/>: hooks fire only for modules called through <c>call</c>; other functional operations
/// (concatenation, slicing, reshapes other than flatten, sums of three) leave the reading layer's input untraced (a value
/// with no producer), so the joins around it are not seen and the matcher pairs those layers by order alone.
/// </remarks>
public static class FlowTracer
{
    /// <summary>How many recent values an input is compared with (by value), and how many of them are tried in pairs as a sum.</summary>
    private const int Window = 64, SumWindow = 24;

    /// <summary>
    /// Traces <paramref name="module"/> on a seeded random input of <paramref name="inputShape"/> (batch first) in eval
    /// mode under no-grad (BatchNorm statistics are not touched; the training mode is restored), and returns its graph
    /// with weights named as <paramref name="stateDict"/> lists them.
    /// </summary>
    /// <exception cref="ArgumentException">The module's forward does not take one tensor, or fails on the input.</exception>
    public static FlowGraph Trace(nn.Module module, IReadOnlyList<long> inputShape, IReadOnlyList<TensorInfo> stateDict, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        var state = new State();
        return LeafTrace.Run(module, inputShape, dtype, state.Enter, state.Leave, untraceable: null,
            x => state.Remember("input", x), () => FlowGraph.ByValueNames(state.Nodes, stateDict));
    }

    /// <summary>
    /// An input shape to trace a module with when the caller gave none: batch 1, the first layer weight's input
    /// channels (or features), and 64 per spatial axis (enough for the classic classifiers with adaptive pooling).
    /// Null when the state dict has no layer weight.
    /// </summary>
    public static IReadOnlyList<long>? GuessInputShape(IReadOnlyList<TensorInfo> stateDict)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        var roles = TensorRoles.FromNames(stateDict);
        var first = stateDict.FirstOrDefault(t => roles[t.Name].Role.IsLayerWeight());
        if (first is null)
        {
            return null;
        }
        var shape = first.Shape;
        if (shape.Rank == 2)
        {
            return [1, shape[1]];
        }
        var dims = new List<long> { 1, shape[1] };
        dims.AddRange(Enumerable.Repeat(shape.Rank == 5 ? 16L : 64L, shape.Rank - 2));
        return dims;
    }

    private sealed class State
    {
        private readonly List<(string Value, Tensor Clone, double[] Probe)> _seen = [];
        private readonly Dictionary<string, string> _pending = new(StringComparer.Ordinal);
        private int _values;

        public List<FlowNode> Nodes { get; } = [];

        public void Remember(string value, Tensor t) => _seen.Add((value, t.detach().clone(), Probe(t)));

        /// <summary>
        /// Up to 16 elements at evenly spaced positions of the flattened tensor, as doubles: candidates (a value, its ReLU,
        /// a sum of two) are screened on these in managed code, and only a candidate that fits them is compared whole.
        /// </summary>
        private static double[] Probe(Tensor t)
        {
            long n = t.numel();
            if (n == 0)
            {
                return [];
            }
            int k = (int)Math.Min(16, n);
            var idx = Enumerable.Range(0, k).Select(i => (long)(i * (n / k))).ToArray();
            using var picked = t.detach().reshape(-1).index_select(0, tensor(idx, device: t.device)).to(ScalarType.Float64).cpu();
            return picked.data<double>().ToArray();
        }

        private static bool Near(double[] a, double[] b, Func<double, double, double>? combine = null, double[]? c = null, bool relu = false)
        {
            if (a.Length != b.Length)
            {
                return false;
            }
            for (int i = 0; i < a.Length; i++)
            {
                var e = c is null ? b[i] : combine!(b[i], c[i]);
                e = relu ? Math.Max(e, 0) : e;
                if (Math.Abs(a[i] - e) > 1e-5 + 1e-4 * Math.Abs(e))
                {
                    return false;
                }
            }
            return true;
        }

        private string NewValue() => $"v{_values++}";

        private string Emit(string name, string op, IReadOnlyList<string> inputs)
        {
            var output = NewValue();
            Nodes.Add(new FlowNode(name, op, inputs, [output]));
            return output;
        }

        public void Enter(string name, nn.Module module, Tensor input)
        {
            var x = Resolve(name, input);
            var own = module.named_parameters(recurse: false).Select(p => p.name)
                .Concat(module.named_buffers(recurse: false).Select(b => b.name)).ToHashSet(StringComparer.Ordinal);
            string W(string member) => own.Contains(member) ? (name.Length == 0 ? member : $"{name}.{member}") : "";
            var type = module.GetType().Name;
            List<string> inputs = [x];
            string op;
            if (type.StartsWith("Conv", StringComparison.Ordinal) && !type.StartsWith("ConvTranspose", StringComparison.Ordinal) && own.Contains("weight"))
            {
                op = "Conv";
                inputs.AddRange([W("weight"), W("bias")]);
            }
            else if (type.StartsWith("BatchNorm", StringComparison.Ordinal) && own.Contains("running_mean"))
            {
                op = "BatchNormalization";
                inputs.AddRange([W("weight"), W("bias"), W("running_mean"), W("running_var"), W("num_batches_tracked")]);
            }
            else if (type == "Linear" && own.Contains("weight"))
            {
                op = "Gemm";
                inputs.AddRange([W("weight"), W("bias")]);
            }
            else
            {
                op = type;
                inputs.AddRange(own.Order(StringComparer.Ordinal).Select(W));
            }
            var output = NewValue();
            Nodes.Add(new FlowNode(name, op, inputs, [output]) { TransB = op == "Gemm" ? true : null });
            _pending[name] = output;
        }

        public void Leave(string name, Tensor output)
        {
            if (_pending.Remove(name, out var value))
            {
                Remember(value, output);
            }
        }

        /// <summary>The value <paramref name="input"/> is, emitting the functional nodes (ReLU, flatten, mean, Add) that made it from traced values.</summary>
        private string Resolve(string name, Tensor input)
        {
            var recent = Enumerable.Reverse(_seen).Take(Window).ToList();
            var probe = Probe(input);
            foreach (var (v, t, p) in recent)
            {
                if (Near(probe, p) && Same(input, t))
                {
                    return v;
                }
            }
            foreach (var (v, t, p) in recent)
            {
                if (t.shape.SequenceEqual(input.shape) && Near(probe, p, relu: true) && Same(input, t.relu()))
                {
                    return Track(Emit($"{name}:relu", "Relu", [v]), input);
                }
                if (input.dim() == 2 && t.dim() >= 3 && t.shape[0] == input.shape[0])
                {
                    long perSample = t.numel() / t.shape[0];
                    if (input.shape[1] == perSample && Near(probe, p) && Same(input, t.flatten(1)))
                    {
                        return Track(Emit($"{name}:flatten", "Flatten", [v]), input);
                    }
                    if (input.shape[1] == t.shape[1] && Same(input, t.flatten(2).mean([2])))
                    {
                        return Track(Emit($"{name}:mean", "GlobalAveragePool", [v]), input);
                    }
                }
            }
            var sameShape = recent.Where(s => s.Clone.shape.SequenceEqual(input.shape)).Take(SumWindow).ToList();
            for (int i = 0; i < sameShape.Count; i++)
            {
                for (int j = i + 1; j < sameShape.Count; j++)
                {
                    if (!Near(probe, sameShape[i].Probe, (x, y) => x + y, sameShape[j].Probe) && !Near(probe, sameShape[i].Probe, (x, y) => x + y, sameShape[j].Probe, relu: true))
                    {
                        continue;
                    }
                    var sum = sameShape[i].Clone + sameShape[j].Clone;
                    bool plain = Same(input, sum);
                    if (plain || Same(input, sum.relu()))
                    {
                        // Older value first: the join's first input is the earlier branch, as an exporter writes it.
                        var add = Emit($"{name}:add", "Add", [sameShape[j].Value, sameShape[i].Value]);
                        return Track(plain ? add : Emit($"{name}:relu", "Relu", [add]), input);
                    }
                }
            }
            // Not explained: a value with no producer (the joins around it are not seen).
            return Track(NewValue(), input);
        }

        private string Track(string value, Tensor t)
        {
            Remember(value, t);
            return value;
        }

        private static bool Same(Tensor a, Tensor b) =>
            a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && allclose(a, b, rtol: 1e-5, atol: 1e-6);
    }
}
