using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Transfer;

/// <summary>
/// Infers <see cref="ChannelGroups"/> from a live module by one forward pass on a random input, with hooks on
/// every leaf module. A leaf's input is linked to what produced it: the output object of another leaf; else, by
/// value, the output of a traced leaf seen through a functional flatten, global mean or ReLU, or the sum of two
/// traced tensors (a residual add, optionally followed by a ReLU), whose producers are then joined in one group.
/// </summary>
/// <remarks>
/// Limits, each reported rather than guessed: hooks fire only for modules called through <c>call</c> (Sequential
/// does; a custom forward calling <c>forward</c> directly hides its children); other functional operations
/// (concatenation, slicing, attention, sums of three or more, reshapes other than flatten) leave the reading layer
/// untraced; grouped convolutions do not follow. Every producer whose channels may reach an untraced input is marked
/// unknown, so transfer falls back to first-n for it and says why.
/// </remarks>
public static class ChannelTracer
{
    /// <summary>
    /// Traces <paramref name="module"/> on a random input of <paramref name="inputShape"/> (batch first). The module
    /// is run in eval mode under no-grad (BatchNorm statistics are not touched) and its training mode is restored.
    /// The input is made in <paramref name="dtype"/> on the module's own device (a CUDA model is traced on CUDA).
    /// </summary>
    /// <exception cref="ArgumentException">The input shape is empty or the forward pass fails on it.</exception>
    public static ChannelGroups Trace(nn.Module module, IReadOnlyList<long> inputShape, ScalarType dtype = ScalarType.Float32)
    {
        var state = new State();
        return LeafTrace.Run(module, inputShape, dtype, state.Pre, state.Post, state.Untraceable.Add, state.AddInput, state.Result);
    }

    private sealed record Origin(int Group, long Block, string? Unknown = null)
    {
        public bool Known => Unknown is null;
    }

    private sealed class State
    {
        private readonly List<int> _parent = [];
        private readonly List<List<string>> _producers = [];
        private readonly List<List<ChannelConsumer>> _consumers = [];
        private readonly List<long> _channels = [];
        private readonly Dictionary<int, string> _flags = [];
        private readonly List<(Tensor Obj, Tensor Value, Origin Origin)> _seen = [];
        private readonly Dictionary<string, (Origin Origin, long[]? PassShape)> _pending = new(StringComparer.Ordinal);
        private readonly List<(long Channels, string Why)> _untracedInputs = [];
        private int _inputGroup = -1;

        public List<string> Untraceable { get; } = [];

        public void AddInput(Tensor x)
        {
            _inputGroup = NewGroup(null, x.shape[1]);
            _flags[_inputGroup] = "joined to the network input by a residual add (the input's channels cannot change)";
            _seen.Add((x, x.detach().clone(), new Origin(_inputGroup, 1)));
        }

        public void Pre(string name, nn.Module module, Tensor input)
        {
            var origin = Resolve(name, input);
            Remember(input, origin);
            var own = module.named_parameters(recurse: false).Select(p => (p.name, Shape: p.parameter.shape))
                .Concat(module.named_buffers(recurse: false).Select(b => (b.name, Shape: b.buffer.shape))).ToList();
            long channels = input.dim() >= 2 ? input.shape[1] : input.shape[0];
            var weight = own.FirstOrDefault(p => p.name == "weight" && p.Shape.Length >= 2);
            if (weight.Shape is not null)
            {
                // A convolution or Linear: it consumes the input's channels and produces a new group.
                bool grouped = weight.Shape.Length >= 3 && weight.Shape[1] != channels;
                if (origin.Known && Find(origin.Group) != Find(_inputGroup))
                {
                    if (grouped)
                    {
                        Flag(origin.Group, $"read by {name}, a grouped convolution");
                    }
                    else
                    {
                        _consumers[Find(origin.Group)].Add(new ChannelConsumer(name, origin.Block));
                    }
                }
                else if (!origin.Known)
                {
                    _untracedInputs.Add((channels, $"{name} reads an untraced input ({origin.Unknown})"));
                }
                _pending[name] = (new Origin(NewGroup(name, weight.Shape[0]), 1), null);
            }
            else if (own.Count > 0)
            {
                // Per-channel vectors (BatchNorm): they carry the input's channels and follow its decision.
                bool perChannel = own.All(p => p.Shape.Length == 0 || (p.Shape.Length == 1 && p.Shape[0] == channels));
                if (origin.Known && perChannel && origin.Block == 1)
                {
                    _producers[Find(origin.Group)].Add(name);
                    _pending[name] = (origin, null);
                }
                else
                {
                    if (origin.Known)
                    {
                        Flag(origin.Group, $"read by {name}, whose parameters are not per-channel vectors");
                    }
                    _pending[name] = (new Origin(-1, 1, $"{name} is neither a convolution, a Linear nor a per-channel layer"), null);
                }
            }
            else
            {
                _pending[name] = (origin, input.shape); // parameter-free: channels pass through; the block is fixed in Post
            }
        }

        public void Post(string name, Tensor output)
        {
            var (origin, passShape) = _pending.TryGetValue(name, out var o) ? o : (new Origin(-1, 1, $"{name} was not seen entering"), null);
            _pending.Remove(name);
            if (origin.Known && passShape is not null && !passShape.SequenceEqual(output.shape))
            {
                // A parameter-free layer that flattens, pools or reshapes: channels pass through or become blocks.
                var reshaped = Reshaped(passShape, output, origin);
                if (reshaped is null)
                {
                    Flag(origin.Group, $"{name} changes the shape {Fmt(passShape)}→{Fmt(output.shape)} in a way that moves channels");
                    reshaped = new Origin(-1, 1, $"{name} moves channels");
                }
                origin = reshaped;
            }
            Remember(output, origin);
        }

        private static Origin? Reshaped(long[] input, Tensor output, Origin origin)
        {
            if (input.Length < 2 || output.dim() < 2 || input[0] != output.shape[0])
            {
                return null;
            }
            if (output.shape[1] == input[1])
            {
                return origin; // pooling, cropping, upsampling: channels unchanged
            }
            long perSample = input.Skip(1).Aggregate(1L, (a, b) => a * b);
            if (output.dim() == 2 && output.shape[1] == perSample)
            {
                return origin with { Block = origin.Block * (perSample / input[1]) };
            }
            return null;
        }

        private void Remember(Tensor obj, Origin origin)
        {
            if (_seen.Any(s => ReferenceEquals(s.Obj, obj)))
            {
                return;
            }
            _seen.Add((obj, obj.detach().clone(), origin));
        }

        private Origin Resolve(string name, Tensor input)
        {
            foreach (var s in Enumerable.Reverse(_seen))
            {
                if (ReferenceEquals(s.Obj, input))
                {
                    return s.Origin;
                }
            }
            var known = Enumerable.Reverse(_seen).Where(s => s.Origin.Known).Take(64).ToList();
            foreach (var s in known)
            {
                if (s.Value.shape.SequenceEqual(input.shape) && (Same(input, s.Value) || Same(input, s.Value.relu())))
                {
                    return s.Origin;
                }
                if (input.dim() == 2 && s.Value.dim() >= 3 && s.Value.shape[0] == input.shape[0])
                {
                    long perSample = s.Value.numel() / s.Value.shape[0];
                    if (input.shape[1] == perSample && Same(input, s.Value.flatten(1)))
                    {
                        return s.Origin with { Block = s.Origin.Block * (perSample / s.Value.shape[1]) };
                    }
                    if (input.shape[1] == s.Value.shape[1] && s.Origin.Block == 1 && Same(input, s.Value.flatten(2).mean([2])))
                    {
                        return s.Origin;
                    }
                }
            }
            var sameShape = known.Where(s => s.Value.shape.SequenceEqual(input.shape) && s.Origin.Block == 1).ToList();
            for (int i = 0; i < sameShape.Count; i++)
            {
                for (int j = i + 1; j < sameShape.Count; j++)
                {
                    var sum = sameShape[i].Value + sameShape[j].Value;
                    if (Same(input, sum) || Same(input, sum.relu()))
                    {
                        int g = Union(sameShape[i].Origin.Group, sameShape[j].Origin.Group);
                        return new Origin(g, 1);
                    }
                }
            }
            return new Origin(-1, 1, $"the input of {name} ({Fmt(input.shape)}) is not a traced output, its flatten, global mean or ReLU, or a sum of two");
        }

        private static bool Same(Tensor a, Tensor b) =>
            a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && allclose(a, b, rtol: 1e-5, atol: 1e-6);

        private int NewGroup(string? producer, long channels)
        {
            _parent.Add(_parent.Count);
            _producers.Add(producer is null ? [] : [producer]);
            _consumers.Add([]);
            _channels.Add(channels);
            return _parent.Count - 1;
        }

        private int Find(int g)
        {
            while (_parent[g] != g)
            {
                _parent[g] = _parent[_parent[g]];
                g = _parent[g];
            }
            return g;
        }

        private int Union(int a, int b)
        {
            a = Find(a);
            b = Find(b);
            if (a == b)
            {
                return a;
            }
            if (b < a)
            {
                (a, b) = (b, a);
            }
            _parent[b] = a;
            _producers[a].AddRange(_producers[b]);
            _consumers[a].AddRange(_consumers[b]);
            if (_flags.TryGetValue(b, out var why))
            {
                _flags.TryAdd(a, why);
            }
            return a;
        }

        private void Flag(int g, string why)
        {
            if (g >= 0)
            {
                _flags.TryAdd(Find(g), why);
            }
        }

        public ChannelGroups Result()
        {
            // Untraced inputs: every group whose channel count could explain them may reach them.
            foreach (var (channels, why) in _untracedInputs)
            {
                for (int g = 0; g < _parent.Count; g++)
                {
                    if (Find(g) == g && _channels[g] > 0 && channels % _channels[g] == 0)
                    {
                        Flag(g, why);
                    }
                }
            }
            var groups = new List<ChannelGroup>();
            var unknown = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int g = 0; g < _parent.Count; g++)
            {
                if (Find(g) != g || _producers[g].Count == 0)
                {
                    continue;
                }
                var producers = _producers[g].Distinct(StringComparer.Ordinal).ToList();
                if (_flags.TryGetValue(g, out var why))
                {
                    foreach (var p in producers)
                    {
                        unknown[p] = why;
                    }
                    continue;
                }
                groups.Add(new ChannelGroup(producers, _consumers[g].Distinct().ToList()));
            }
            foreach (var u in Untraceable)
            {
                unknown.TryAdd(u, $"{u} cannot be hooked (its forward does not take one tensor)");
            }
            return new ChannelGroups(groups, unknown, ChannelGroupOrigin.Traced);
        }

        private static string Fmt(long[] shape) => string.Join("×", shape);
    }
}
