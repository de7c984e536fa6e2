using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// A network's structure as the matcher sees it: its units in canonical data-flow order (a block's shortcut units after
/// its main path), and where it has them, stages of residual blocks between plain units before and after.
/// </summary>
/// <param name="Units">Every unit in canonical order.</param>
/// <param name="Origin">What the structure was read from (for the plan).</param>
public sealed record NetStructure(IReadOnlyList<LayerUnit> Units, string Origin)
{
    /// <summary>Plain units before the first residual block (a stem).</summary>
    public IReadOnlyList<LayerUnit> Before { get; init; } = [];

    /// <summary>Residual blocks grouped in stages (a stage starts at a block whose shortcut projects), or null when the structure is not stages of blocks.</summary>
    public IReadOnlyList<IReadOnlyList<ResidualBlock>>? Stages { get; init; }

    /// <summary>Plain units after the last residual block (a head).</summary>
    public IReadOnlyList<LayerUnit> After { get; init; } = [];

    /// <summary>
    /// A state dict's structure, from module order and what names and shapes reveal: a conv layer and the BatchNorm
    /// layer right after it (same channel count) form a unit; layers named <c>downsample</c> or <c>shortcut</c> are
    /// shortcut units; <c>stage.N.…</c> names group blocks (<c>layer1.0.conv1</c>: stage <c>layer1</c>, block 0), as in
    /// torchvision's and TorchVision .NET's ResNets.
    /// </summary>
    public static NetStructure FromStateDict(IReadOnlyList<TensorInfo> tensors, string origin = "the template's names and shapes")
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var roles = TensorRoles.FromNames(tensors);
        var layers = LayerGroups.Of(tensors);
        var units = new List<LayerUnit>();
        for (int l = 0; l < layers.Count; l++)
        {
            var members = layers.Members(l);
            var layer = TensorName.LayerOf(tensors[members[0]].Name);
            string? weight = null, bias = null;
            Shape? shape = null;
            UnitKind kind = UnitKind.Conv;
            string? scale = null, shift = null, mean = null, var = null, count = null;
            foreach (var i in members)
            {
                var t = tensors[i];
                switch (roles[t.Name].Role)
                {
                    case TensorRole.ConvWeight: weight = t.Name; shape = t.Shape; kind = UnitKind.Conv; break;
                    case TensorRole.LinearWeight or TensorRole.HeadWeight: weight = t.Name; shape = t.Shape; kind = UnitKind.Linear; break;
                    case TensorRole.ConvBias or TensorRole.LinearBias or TensorRole.HeadBias: bias = t.Name; break;
                    case TensorRole.NormScale: scale = t.Name; break;
                    case TensorRole.NormShift: shift = t.Name; break;
                    case TensorRole.NormMean: mean = t.Name; break;
                    case TensorRole.NormVar: var = t.Name; break;
                    case TensorRole.NormCount: count = t.Name; break;
                }
            }
            if (weight is not null && shape is not null)
            {
                units.Add(new LayerUnit(kind, layer, weight, shape, bias)
                {
                    Shortcut = IsShortcutName(layer),
                    Evidence = $"{(kind == UnitKind.Conv ? "conv" : "linear")} layer '{layer}' (weight rank {shape.Rank})",
                });
            }
            else if (scale is not null && shift is not null && mean is not null && var is not null && units.Count > 0)
            {
                // A BatchNorm belongs to the unit right before it in module order when it normalises that unit's outputs.
                var prev = units[^1];
                var channels = tensors[members[0]].Shape.Rank == 1 ? tensors[members[0]].Shape[0] : -1;
                if (prev.Norm is null && prev.Kind == UnitKind.Conv && prev.WeightShape[0] == channels)
                {
                    units[^1] = prev with
                    {
                        Norm = new NormTensors(scale, shift, mean, var, count, 1e-5, layer),
                        Evidence = prev.Evidence + $", BatchNorm '{layer}' after it ({channels} channels)",
                    };
                }
            }
        }
        return Arrange(units, origin);
    }

    private static bool IsShortcutName(string layer) =>
        layer.Split('.').Any(s => s is "downsample" or "shortcut" or "skip" or "proj_shortcut");

    /// <summary>Groups a state dict's units into blocks and stages by their names (<c>stage.N.</c>), when every unit between the first and the last block has one.</summary>
    private static NetStructure Arrange(List<LayerUnit> units, string origin)
    {
        var keys = units.Select(u => BlockKey(u.Name)).ToList();
        int first = keys.FindIndex(k => k is not null), last = keys.FindLastIndex(k => k is not null);
        if (first < 0 || keys.Skip(first).Take(last - first + 1).Any(k => k is null))
        {
            return new NetStructure(units, origin);
        }
        var stages = new List<IReadOnlyList<ResidualBlock>>();
        var blocks = new List<ResidualBlock>();
        string? stage = null, block = null;
        var main = new List<LayerUnit>();
        var shortcut = new List<LayerUnit>();
        void EndBlock()
        {
            if (block is not null)
            {
                blocks.Add(new ResidualBlock(block, main.ToList(), shortcut.ToList()));
                main.Clear();
                shortcut.Clear();
            }
        }
        for (int i = first; i <= last; i++)
        {
            var (s, b) = keys[i]!.Value;
            if (b != block)
            {
                EndBlock();
                block = b;
            }
            if (s != stage)
            {
                if (blocks.Count > 0)
                {
                    stages.Add(blocks.ToList());
                    blocks.Clear();
                }
                stage = s;
            }
            (units[i].Shortcut ? shortcut : main).Add(units[i]);
        }
        EndBlock();
        stages.Add(blocks.ToList());
        // Canonical order: per block, main path then shortcut.
        var ordered = units.Take(first).Concat(stages.SelectMany(s => s).SelectMany(b => b.Units)).Concat(units.Skip(last + 1)).ToList();
        return new NetStructure(ordered, origin) { Before = units.Take(first).ToList(), Stages = stages, After = units.Skip(last + 1).ToList() };
    }

    /// <summary><c>layer1.0.conv1</c> → (<c>layer1</c>, <c>layer1.0</c>): the prefix before the first numeric segment and the prefix through it.</summary>
    private static (string Stage, string Block)? BlockKey(string layer)
    {
        var parts = layer.Split('.');
        for (int i = 1; i < parts.Length - 1; i++)
        {
            if (parts[i].Length > 0 && parts[i].All(char.IsAsciiDigit) && !parts[i - 1].All(char.IsAsciiDigit))
            {
                return (string.Join('.', parts.Take(i)), string.Join('.', parts.Take(i + 1)));
            }
        }
        return null;
    }

    /// <summary>
    /// A graph's structure: conv units (Conv [→ BatchNormalization]) and linear units (Gemm, MatMul), residual joins
    /// (Add of two computed values). At each join the branch with fewer units since the fork is the shortcut, found by
    /// following the data back, not by node order (a CNTK export puts the shortcut conv first). Units come in node order,
    /// each shortcut's units moved after its block's main path.
    /// </summary>
    public static NetStructure FromGraph(FlowGraph graph, string origin = "the source's ONNX graph")
    {
        ArgumentNullException.ThrowIfNull(graph);
        var nodes = graph.Nodes;
        var unitOfNode = new Dictionary<int, int>();
        var units = new List<LayerUnit>();
        var unitOutput = new Dictionary<string, int>(StringComparer.Ordinal); // a unit's last value → unit
        var absorbed = new HashSet<int>();
        for (int n = 0; n < nodes.Count; n++)
        {
            var node = nodes[n];
            LayerUnit? unit = null;
            string? output = node.Outputs.Count > 0 ? node.Outputs[0] : null;
            if (node.OpType == "Conv" && graph.WeightAt(n, 1) is { } w && graph.Shape(w) is { Rank: >= 3 } shape)
            {
                var bias = graph.WeightAt(n, 2);
                unit = new LayerUnit(UnitKind.Conv, node.Name, w, shape, bias) { Evidence = $"Conv node '{node.Name}' (input W '{w}'{(bias is null ? "" : $", B '{bias}'")})" };
                var consumers = output is null ? [] : graph.Consumers(output);
                if (consumers.Count == 1 && nodes[consumers[0]] is { OpType: "BatchNormalization" } bn && bn.Inputs.Count >= 5
                    && graph.WeightAt(consumers[0], 1) is { } s && graph.WeightAt(consumers[0], 2) is { } b
                    && graph.WeightAt(consumers[0], 3) is { } m && graph.WeightAt(consumers[0], 4) is { } v)
                {
                    double eps = bn.Epsilon ?? 1e-5;
                    unit = unit with
                    {
                        // A sixth input is a traced module's num_batches_tracked (ONNX's BatchNormalization has five).
                        Norm = new NormTensors(s, b, m, v, graph.WeightAt(consumers[0], 5), eps, bn.Name),
                        Evidence = unit.Evidence + FormattableString.Invariant($" → BatchNormalization '{bn.Name}' (scale, B, mean, var; epsilon {eps:G6})"),
                    };
                    absorbed.Add(consumers[0]);
                    output = bn.Outputs[0];
                }
            }
            else if (node.OpType == "Gemm" && graph.WeightAt(n, 1) is { } gw && graph.Shape(gw) is { Rank: 2 } gshape && node.TransA != true)
            {
                var bias = graph.WeightAt(n, 2);
                unit = new LayerUnit(UnitKind.Linear, node.Name, gw, gshape, bias)
                {
                    TransposedWeight = node.TransB != true,
                    Evidence = $"Gemm node '{node.Name}' (input B '{gw}', transB {(node.TransB == true ? 1 : 0)})",
                };
            }
            else if (node.OpType == "MatMul" && node.Inputs.Count == 2 && graph.WeightAt(n, 1) is { } mw && graph.Shape(mw) is { Rank: 2 } mshape)
            {
                string? bias = null;
                var consumers = output is null ? [] : graph.Consumers(output);
                if (consumers.Count == 1 && nodes[consumers[0]] is { OpType: "Add" } add && add.Inputs.Count == 2)
                {
                    if (graph.WeightAt(consumers[0], add.Inputs[0] == output ? 1 : 0) is { } ab && graph.Shape(ab) is { Rank: 1 })
                    {
                        bias = ab;
                        absorbed.Add(consumers[0]);
                        output = add.Outputs[0];
                    }
                }
                unit = new LayerUnit(UnitKind.Linear, node.Name, mw, mshape, bias)
                {
                    TransposedWeight = true,
                    Evidence = $"MatMul node '{node.Name}' (weight '{mw}'{(bias is null ? "" : $", Add bias '{bias}'")})",
                };
            }
            if (unit is not null && output is not null)
            {
                unitOfNode[n] = units.Count;
                unitOutput[output] = units.Count;
                units.Add(unit);
            }
        }

        // Residual joins: an Add of two computed values. Walk each input back along first data inputs to the fork.
        var blockOf = new int[units.Count];
        Array.Fill(blockOf, -1);
        var joins = new List<(int Node, List<int> Main, List<int> Shortcut)>();
        for (int n = 0; n < nodes.Count; n++)
        {
            var node = nodes[n];
            if (node.OpType != "Add" || absorbed.Contains(n) || node.Inputs.Count != 2
                || graph.WeightAt(n, 0) is not null || graph.WeightAt(n, 1) is not null)
            {
                continue;
            }
            if (Fork(graph, node.Inputs[0], node.Inputs[1]) is not { } fork)
            {
                continue;
            }
            var (a, forkA, b, forkB) = fork;
            var unitsA = UnitsOn(a, forkA, unitOutput);
            var unitsB = UnitsOn(b, forkB, unitOutput);
            if (unitsA.Count == unitsB.Count)
            {
                continue; // not a residual block with a main path (or two equal branches): no block
            }
            var (main, shortcut) = unitsA.Count > unitsB.Count ? (unitsA, unitsB) : (unitsB, unitsA);
            foreach (var u in main.Concat(shortcut))
            {
                blockOf[u] = joins.Count;
            }
            foreach (var u in shortcut)
            {
                units[u] = units[u] with { Shortcut = true, Evidence = units[u].Evidence + $", shortcut into Add '{node.Name}'" };
            }
            joins.Add((n, main, shortcut));
        }

        // Canonical order: node order, each block's shortcut units after its main path.
        var ordered = new List<LayerUnit>(units.Count);
        int block = 0;
        var before = new List<LayerUnit>();
        var after = new List<LayerUnit>();
        var blocks = new List<ResidualBlock>();
        bool plainBetween = false;
        for (int u = 0; u < units.Count; u++)
        {
            if (units[u].Shortcut)
            {
                continue;
            }
            if (blockOf[u] < 0)
            {
                ordered.Add(units[u]);
                if (blocks.Count == 0 && block == 0)
                {
                    before.Add(units[u]);
                }
                else
                {
                    after.Add(units[u]);
                }
                continue;
            }
            if (after.Count > 0)
            {
                plainBetween = true;
            }
            // The block's units in node order, main path first; emitted once, at its first main unit.
            var j = blockOf[u];
            if (j >= block)
            {
                for (; block <= j; block++)
                {
                    var (node, main, shortcut) = joins[block];
                    ordered.AddRange(main.Select(i => units[i]));
                    ordered.AddRange(shortcut.Select(i => units[i]));
                    blocks.Add(new ResidualBlock(nodes[node].Name, main.Select(i => units[i]).ToList(), shortcut.Select(i => units[i]).ToList()));
                }
            }
        }
        var result = new NetStructure(ordered, origin);
        if (blocks.Count == 0 || plainBetween)
        {
            return result;
        }
        // Stages: a new stage starts at a block whose shortcut projects.
        var stages = new List<IReadOnlyList<ResidualBlock>>();
        foreach (var b in blocks)
        {
            if (stages.Count == 0 || b.Shortcut.Count > 0)
            {
                stages.Add(new List<ResidualBlock>());
            }
            ((List<ResidualBlock>)stages[^1]).Add(b);
        }
        return result with { Before = before, Stages = stages, After = after };
    }

    /// <summary>
    /// Walks back from both inputs of a join at once, along each producer's first input, until one walk meets a value
    /// the other has passed: the fork. Returns both walks and where the fork lies on each (the walks stop there, so a
    /// join costs what its block holds, not the depth of the network). Null when the inputs share no ancestor.
    /// </summary>
    private static (List<string> A, int ForkA, List<string> B, int ForkB)? Fork(FlowGraph graph, string first, string second)
    {
        var a = new List<string>();
        var b = new List<string>();
        var seenA = new Dictionary<string, int>(StringComparer.Ordinal);
        var seenB = new Dictionary<string, int>(StringComparer.Ordinal);
        string? va = first, vb = second;
        for (int steps = 0; steps < 1_000_000 && (va is not null || vb is not null); steps++)
        {
            if (va is not null)
            {
                if (seenB.TryGetValue(va, out var j))
                {
                    return (a, a.Count, b, j);
                }
                if (!seenA.TryAdd(va, a.Count))
                {
                    va = null;
                }
                else
                {
                    a.Add(va);
                    va = Previous(graph, va);
                }
            }
            if (vb is not null)
            {
                if (seenA.TryGetValue(vb, out var k))
                {
                    return (a, k, b, b.Count);
                }
                if (!seenB.TryAdd(vb, b.Count))
                {
                    vb = null;
                }
                else
                {
                    b.Add(vb);
                    vb = Previous(graph, vb);
                }
            }
        }
        return null;
    }

    private static string? Previous(FlowGraph graph, string value) =>
        graph.Producer(value) is { } p && graph.Nodes[p].Inputs.Count > 0 ? graph.Nodes[p].Inputs[0] : null;

    /// <summary>The units whose output value lies on <paramref name="chain"/> before index <paramref name="fork"/>, in data-flow order.</summary>
    private static List<int> UnitsOn(List<string> chain, int fork, Dictionary<string, int> unitOutput)
    {
        var found = new List<int>();
        for (int i = fork - 1; i >= 0; i--)
        {
            if (unitOutput.TryGetValue(chain[i], out var u))
            {
                found.Add(u);
            }
        }
        return found;
    }
}
