using System.Globalization;
using System.Runtime.InteropServices;
using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>A pair of units the structure matcher made, and why.</summary>
/// <param name="Target">The target's unit.</param>
/// <param name="Source">The source's unit.</param>
/// <param name="Evidence">Why these two: position in the data flow, op kind, shapes.</param>
public sealed record UnitPair(LayerUnit Target, LayerUnit Source, string Evidence);

/// <summary>
/// Pairs the units of two networks by structure when their names share (almost) nothing: op kind, shapes and place in
/// the data flow. Never guesses: where two pairings explain the evidence equally, those layers are refused and the
/// plan says how to pin them (<c>--rename</c>).
/// </summary>
public static class StructureMatcher
{
    /// <summary>The pairs, and notes on what had no place or was refused.</summary>
    public static (List<UnitPair> Pairs, List<string> Notes) Align(NetStructure source, NetStructure target)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        var pairs = new List<UnitPair>();
        var notes = new List<string>();
        var (srcBody, srcTail) = SplitTail(source.Units);
        var (tgtBody, tgtTail) = SplitTail(target.Units);

        if (srcBody.Count == tgtBody.Count && Enumerable.Range(0, srcBody.Count).All(i => Compatible(tgtBody[i], srcBody[i], strict: true, stem: i == 0)))
        {
            for (int i = 0; i < srcBody.Count; i++)
            {
                pairs.Add(new UnitPair(tgtBody[i], srcBody[i], $"unit {i + 1} of {srcBody.Count} in data-flow order on both sides, same op and kernel"));
            }
        }
        else if (source.Stages is { } ss && target.Stages is { } ts && ss.Count == ts.Count)
        {
            AlignStages(source, target, ss, ts, pairs, notes);
        }
        else
        {
            AlignEnds(srcBody, tgtBody, pairs, notes, stem: true);
        }

        // Heads: trailing linear layers, paired from the end.
        int k = 0;
        for (; k < Math.Min(srcTail.Count, tgtTail.Count); k++)
        {
            var s = srcTail[^(k + 1)];
            var t = tgtTail[^(k + 1)];
            if (!Compatible(t, s, strict: false) || t.LogicalShape[1] != s.LogicalShape[1])
            {
                break;
            }
            pairs.Add(new UnitPair(t, s, k == 0 ? "the last linear layer on both sides (classifier)" : $"linear layer {k + 1} from the end on both sides"));
        }
        foreach (var t in tgtTail.Take(tgtTail.Count - k))
        {
            notes.Add(srcTail.Count == 0
                ? $"{t.Name}: the source has no linear layer (no classifier); the target's own init is kept"
                : $"{t.Name}: no source linear layer fits (inputs differ); the target's own init is kept");
        }
        foreach (var s in srcTail.Take(srcTail.Count - k))
        {
            notes.Add($"source {s.Name}: linear layer with no place in the target; unused");
        }
        return (pairs, notes);
    }

    private static (List<LayerUnit> Body, List<LayerUnit> Tail) SplitTail(IReadOnlyList<LayerUnit> units)
    {
        int end = units.Count;
        while (end > 0 && units[end - 1].Kind == UnitKind.Linear)
        {
            end--;
        }
        return (units.Take(end).ToList(), units.Skip(end).ToList());
    }

    /// <summary>Same op, same rank, both depthwise or neither; with <paramref name="strict"/>, also the same kernel.</summary>
    private static bool Compatible(LayerUnit t, LayerUnit s, bool strict, bool stem = false)
    {
        // A 1-channel stem's kernel (out, 1, k, k) looks depthwise by shape: at the stem, inputs are the image's channels.
        if (t.Kind != s.Kind || t.WeightShape.Rank != s.WeightShape.Rank || (!stem && t.OneInputPerGroup != s.OneInputPerGroup))
        {
            return false;
        }
        return !strict || t.Kind != UnitKind.Conv || t.WeightShape.Skip(2).SequenceEqual(s.WeightShape.Skip(2));
    }

    private static void AlignStages(NetStructure source, NetStructure target, IReadOnlyList<IReadOnlyList<ResidualBlock>> ss,
        IReadOnlyList<IReadOnlyList<ResidualBlock>> ts, List<UnitPair> pairs, List<string> notes)
    {
        var srcBefore = source.Before.Where(u => u.Kind == UnitKind.Conv).ToList();
        var tgtBefore = target.Before.Where(u => u.Kind == UnitKind.Conv).ToList();
        AlignEnds(srcBefore, tgtBefore, pairs, notes, stem: true);
        for (int st = 0; st < ss.Count; st++)
        {
            for (int b = 0; b < Math.Max(ss[st].Count, ts[st].Count); b++)
            {
                var where = $"stage {st + 1} block {b + 1}";
                if (b >= ts[st].Count)
                {
                    notes.Add($"source block {ss[st][b].Name} ({where}: {string.Join(", ", ss[st][b].Units.Select(u => u.Name))}) has no place in the target, whose stage {st + 1} has {ts[st].Count} blocks; unused");
                    continue;
                }
                if (b >= ss[st].Count)
                {
                    notes.Add($"target block {ts[st][b].Name} ({where}) has no source block (the source's stage {st + 1} has {ss[st].Count}); its own init is kept");
                    continue;
                }
                var s = ss[st][b];
                var t = ts[st][b];
                if (s.Main.Count != t.Main.Count || s.Shortcut.Count != t.Shortcut.Count
                    || !s.Main.Zip(t.Main).All(p => Compatible(p.Second, p.First, strict: false))
                    || !s.Shortcut.Zip(t.Shortcut).All(p => Compatible(p.Second, p.First, strict: false)))
                {
                    notes.Add($"target block {t.Name} ({where}) and source block {s.Name} differ in their units " +
                        $"({t.Main.Count}+{t.Shortcut.Count} vs {s.Main.Count}+{s.Shortcut.Count} main+shortcut); refused, the target's init is kept (pin pairs with --rename)");
                    continue;
                }
                for (int i = 0; i < s.Main.Count; i++)
                {
                    pairs.Add(new UnitPair(t.Main[i], s.Main[i], $"{where}, main path unit {i + 1} of {s.Main.Count} (source join '{s.Name}')"));
                }
                for (int i = 0; i < s.Shortcut.Count; i++)
                {
                    pairs.Add(new UnitPair(t.Shortcut[i], s.Shortcut[i], $"{where}, shortcut unit {i + 1} (source join '{s.Name}')"));
                }
            }
        }
        var srcAfter = source.After.Where(u => u.Kind == UnitKind.Conv).ToList();
        var tgtAfter = target.After.Where(u => u.Kind == UnitKind.Conv).ToList();
        AlignEnds(srcAfter, tgtAfter, pairs, notes);
    }

    /// <summary>
    /// Pairs units counted from the input and, independently, counted from the output, as far as each runs with equal
    /// shapes (the network's stem may differ in its inputs). A target unit both counts place on different source units
    /// could go either way: it is refused, never guessed; one no count reaches has no fit. Both are named in a note.
    /// </summary>
    private static void AlignEnds(List<LayerUnit> src, List<LayerUnit> tgt, List<UnitPair> pairs, List<string> notes, bool stem = false)
    {
        int p = 0;
        while (p < src.Count && p < tgt.Count && Fits(tgt[p], src[p], stem && p == 0))
        {
            p++;
        }
        int q = 0;
        while (q < src.Count && q < tgt.Count && Fits(tgt[^(q + 1)], src[^(q + 1)], stem && q == tgt.Count - 1 && q == src.Count - 1))
        {
            q++;
        }
        var used = new HashSet<LayerUnit>(ReferenceEqualityComparer.Instance);
        var ambiguous = new List<string>();
        var none = new List<string>();
        for (int i = 0; i < tgt.Count; i++)
        {
            LayerUnit? fromInput = i < p ? src[i] : null;
            int k = tgt.Count - 1 - i;
            LayerUnit? fromOutput = k < q ? src[src.Count - 1 - k] : null;
            if (fromInput is not null && fromOutput is not null && !ReferenceEquals(fromInput, fromOutput))
            {
                ambiguous.Add($"{tgt[i].Name} (fits {fromInput.Name} counted from the input, {fromOutput.Name} from the output)");
                continue;
            }
            if ((fromInput ?? fromOutput) is not { } s)
            {
                none.Add(tgt[i].Name);
                continue;
            }
            used.Add(s);
            pairs.Add(new UnitPair(tgt[i], s, fromInput is not null
                ? $"unit {i + 1} from the input on both sides, same op and shape"
                : $"unit {k + 1} from the output on both sides, same op and shape"));
        }
        if (ambiguous.Count > 0)
        {
            notes.Add($"refused, two pairings fit equally: {string.Join("; ", ambiguous)}; their init is kept (pin pairs with --rename)");
        }
        if (none.Count > 0)
        {
            notes.Add($"refused by structure: no source unit in place with the same op and shape for {string.Join(", ", none)}; their init is kept (pin pairs with --rename)");
        }
        var unused = src.Where(u => !used.Contains(u)).Select(u => u.Name).ToList();
        if (unused.Count > 0)
        {
            notes.Add($"source units {string.Join(", ", unused)} have no place in the target; unused");
        }
    }

    /// <summary>Same op and weight shape (a stem may differ in its inputs, which the transforms adapt).</summary>
    private static bool Fits(LayerUnit t, LayerUnit s, bool stem)
    {
        if (!Compatible(t, s, strict: true, stem))
        {
            return false;
        }
        var a = t.LogicalShape;
        var b = s.LogicalShape;
        return a[0] == b[0] && (stem || a[1] == b[1]);
    }
}

/// <summary>
/// A matched source: the source checkpoint plus tensors computed from it for a pairing (a folded BatchNorm, an
/// identity BatchNorm, a transposed linear weight), read on demand.
/// </summary>
internal sealed class MatchedSource : ICheckpointReader
{
    private readonly ICheckpointReader _base;
    private readonly Dictionary<string, (TensorInfo Info, Func<byte[]> Compute)> _virtual = new(StringComparer.Ordinal);
    private readonly List<TensorInfo> _tensors;

    public MatchedSource(ICheckpointReader source)
    {
        _base = source;
        _tensors = [.. source.Tensors];
    }

    public string Path => _base.Path;

    public string Format => _base.Format;

    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    public IReadOnlyDictionary<string, string> Metadata => _base.Metadata;

    public bool TryGetTensor(string name, out TensorInfo info)
    {
        if (_virtual.TryGetValue(name, out var v))
        {
            info = v.Info;
            return true;
        }
        return _base.TryGetTensor(name, out info!);
    }

    public void ReadBytes(TensorInfo tensor, Span<byte> destination)
    {
        if (_virtual.TryGetValue(tensor.Name, out var v))
        {
            v.Compute().CopyTo(destination);
            return;
        }
        _base.ReadBytes(tensor, destination);
    }

    public void CopyTo(TensorInfo tensor, Stream destination)
    {
        if (_virtual.TryGetValue(tensor.Name, out var v))
        {
            destination.Write(v.Compute());
            return;
        }
        _base.CopyTo(tensor, destination);
    }

    public void Dispose()
    {
        // The base reader belongs to the caller.
    }

    /// <summary>Adds a computed tensor (once per name) and returns its name.</summary>
    public string Add(string name, DType dtype, Shape shape, Func<double[]> values)
    {
        if (!_virtual.ContainsKey(name))
        {
            var info = new TensorInfo(name, dtype, shape, shape.ElementCount * dtype.ElementSize());
            _virtual[name] = (info, () => Encode(values(), dtype));
            _tensors.Add(info);
        }
        return name;
    }

    /// <summary>A float tensor of the base checkpoint as doubles (F32 or F64).</summary>
    public double[] Values(string name)
    {
        if (!_base.TryGetTensor(name, out var info))
        {
            throw new InvalidOperationException($"{Path} has no tensor '{name}'.");
        }
        var bytes = new byte[info.ByteLength];
        _base.ReadBytes(info, bytes);
        return info.DType switch
        {
            DType.F32 => Array.ConvertAll(MemoryMarshal.Cast<byte, float>(bytes).ToArray(), f => (double)f),
            DType.F64 => MemoryMarshal.Cast<byte, double>(bytes).ToArray(),
            _ => throw new InvalidOperationException($"{name}: {info.DType} cannot be folded (F32 and F64 can)."),
        };
    }

    private static byte[] Encode(double[] values, DType dtype)
    {
        switch (dtype)
        {
            case DType.F32:
            {
                var f = Array.ConvertAll(values, d => (float)d);
                return MemoryMarshal.AsBytes(f.AsSpan()).ToArray();
            }
            case DType.F64:
                return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            case DType.I64:
            {
                var l = Array.ConvertAll(values, d => (long)d);
                return MemoryMarshal.AsBytes(l.AsSpan()).ToArray();
            }
            default:
                throw new InvalidOperationException($"A computed tensor of {dtype} is not supported.");
        }
    }
}

/// <summary>The target's structure read from its own graph (a trace, an ONNX template), or null with a note saying why not.</summary>
/// <param name="Structure">The structure, or null when it could not be read.</param>
/// <param name="Note">A note for the plan (why the graph could not be read), or null.</param>
internal sealed record TargetStructure(NetStructure? Structure, string? Note);

/// <summary>
/// Matching by the computation graph, used by <see cref="WeightTransfer"/> with no option when the source has a graph
/// and the names share (almost) nothing: units are paired by <see cref="StructureMatcher"/>, and each pair's tensors are
/// carried by role, folding or unfolding BatchNorm where one side has it and the other does not.
/// </summary>
internal static class GraphMatch
{
    /// <summary>PyTorch's and TorchSharp's BatchNorm ε: a state dict does not store it.</summary>
    internal const double TargetEpsilon = 1e-5;

    internal sealed record Result(ICheckpointReader Source, Dictionary<string, NameMatch> Matches, List<string> Notes)
    {
        /// <summary>The source graph ends without a linear layer (a feature extractor, like ML.NET's ResNet-18): the template's head is new.</summary>
        public bool SourceHasNoHead { get; init; }
    }

    /// <summary>
    /// The graph-matched source and matches when <paramref name="graph"/> is given and names matched (almost) none of
    /// the template's layers; null to keep matching by name.
    /// </summary>
    internal static Result? TryMatch(ICheckpointReader source, FlowGraph? graph, IReadOnlyList<TensorInfo> template, TransferPolicy policy,
        IReadOnlyDictionary<string, NameMatch> byName, Func<TargetStructure>? targetStructure = null)
    {
        if (graph is null)
        {
            return null;
        }
        var roles = TensorRoles.FromNames(template);
        int weights = 0, named = 0;
        foreach (var t in template)
        {
            var role = roles[t.Name].Role;
            if (role is TensorRole.ConvWeight or TensorRole.LinearWeight)
            {
                weights++;
                named += byName.TryGetValue(t.Name, out var m) && m.Kind != MatchKind.Structural ? 1 : 0;
            }
        }
        if (weights > 0 && named * 10 > weights)
        {
            return null;
        }
        var src = NetStructure.FromGraph(graph);
        if (src.Units.Count == 0)
        {
            return null;
        }
        // The target's structure: its own graph (a trace of the live module, an ONNX template's graph) where there is
        // one and it reaches every layer the names show; otherwise what the names and shapes reveal.
        var byNames = NetStructure.FromStateDict(template);
        var tgt = byNames;
        string? targetNote = null;
        if (targetStructure?.Invoke() is { } given)
        {
            targetNote = given.Note;
            if (given.Structure is { } s && s.Units.Count >= byNames.Units.Count && s.Units.Count > 0)
            {
                tgt = s;
            }
            else if (given.Structure is { } partial)
            {
                targetNote = $"{partial.Origin} reached {partial.Units.Count} of the {byNames.Units.Count} layers the template's names show; {byNames.Origin} are used";
            }
        }
        if (weights == 0)
        {
            // Names that reveal no layer (an ONNX template's onnx::Conv_12): count the structure's layers instead.
            weights = tgt.Units.Count;
            named = tgt.Units.Count(u => byName.TryGetValue(u.Weight, out var m) && m.Kind != MatchKind.Structural);
            if (weights == 0 || named * 10 > weights)
            {
                return null;
            }
        }
        var (pairs, notes) = StructureMatcher.Align(src, tgt);
        var matched = new MatchedSource(source);
        var matches = new Dictionary<string, NameMatch>(byName, StringComparer.Ordinal);
        var templateByName = template.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var pinnedSources = new HashSet<string>(byName.Values.Select(m => m.Source), StringComparer.Ordinal);
        var result = new List<string>
        {
            $"matched by structure: {named} of the template's {weights} layer weights matched by name, so layers were paired by their place in {src.Origin} " +
            $"({src.Units.Count} units) and in {tgt.Origin} ({tgt.Units.Count} units); each pair below with its evidence",
        };
        if (targetNote is not null)
        {
            result.Add(targetNote);
        }
        foreach (var pair in pairs)
        {
            var (t, s) = (pair.Target, pair.Source);
            if (byName.ContainsKey(t.Weight) || pinnedSources.Contains(s.Weight))
            {
                result.Add($"{t.Name} keeps its pair by name or --rename; the structure's pair {s.Name} is not used for it");
                continue;
            }
            if (policy.Rules.Any(r => r.Structural == false && r.Matches(t.Weight)))
            {
                result.Add($"{t.Name}: a rule refuses structural pairing (structural=false); its init is kept");
                continue;
            }
            string? how;
            try
            {
                how = Carry(pair, matched, matches, templateByName);
            }
            catch (InvalidOperationException e)
            {
                result.Add($"{t.Name}: not carried ({e.Message})");
                continue;
            }
            result.Add($"pair: {t.Name} ← {s.Name}: {pair.Evidence}{(how is null ? "" : "; " + how)}");
        }
        result.AddRange(notes);
        return new Result(matched, matches, result) { SourceHasNoHead = src.Units.Count > 0 && src.Units[^1].Kind != UnitKind.Linear };
    }

    /// <summary>Pairs one unit's tensors by role; returns what was computed rather than copied, for the plan.</summary>
    private static string? Carry(UnitPair pair, MatchedSource src, Dictionary<string, NameMatch> matches, Dictionary<string, TensorInfo> template)
    {
        var (t, s) = (pair.Target, pair.Source);
        var why = $"structure: {pair.Evidence}";
        void Pair(string target, string source) => matches[target] = new NameMatch(target, source, MatchKind.Graph, why);
        var dtype = src.TryGetTensor(s.Weight, out var wInfo) ? wInfo.DType : DType.F32;
        long outs = s.LogicalShape[0];
        string? how = null;

        // Weight (and the source BatchNorm folded into it when the target has none).
        if (s.Norm is { } sn && t.Norm is null)
        {
            var name = src.Add($"{s.Weight}#folded({sn.Layer}).weight", dtype, s.WeightShape, () => FoldWeight(src, s, sn));
            Pair(t.Weight, name);
            if (t.Bias is not null)
            {
                Pair(t.Bias, src.Add($"{s.Weight}#folded({sn.Layer}).bias", dtype, new Shape(outs), () => FoldBias(src, s, sn)));
                how = $"the source's BatchNorm {sn.Layer} folded into the weight and bias (W·γ/√(var+ε), (b−mean)·γ/√(var+ε)+β)";
            }
            else
            {
                throw new InvalidOperationException($"the source's BatchNorm {sn.Layer} has a shift that the target's conv, without bias or BatchNorm, cannot hold");
            }
        }
        else if (s.TransposedWeight)
        {
            var shape = s.LogicalShape;
            Pair(t.Weight, src.Add($"{s.Weight}#transposed", dtype, shape, () => Transpose(src.Values(s.Weight), s.WeightShape[0], s.WeightShape[1])));
            how = "the (in, out) weight transposed to (out, in)";
        }
        else
        {
            Pair(t.Weight, s.Weight);
        }

        // Bias of the target's own layer, when not set by a fold above.
        if (t.Bias is not null && !matches.ContainsKey(t.Bias))
        {
            if (s.Bias is not null && t.Norm is null)
            {
                Pair(t.Bias, s.Bias);
            }
            else
            {
                // The source's shift lives in a BatchNorm (the target's own BatchNorm, below) or nowhere: the conv's bias is zero.
                Pair(t.Bias, src.Add($"{s.Weight}#zero-bias", dtype, new Shape(outs), () => new double[outs]));
            }
        }

        // The target's BatchNorm.
        if (t.Norm is { } tn)
        {
            if (s.Norm is { } n)
            {
                Pair(tn.Scale, n.Scale);
                Pair(tn.Shift, n.Shift);
                Pair(tn.Mean, n.Mean);
                if (Math.Abs(n.Epsilon - TargetEpsilon) > 1e-12)
                {
                    var delta = n.Epsilon - TargetEpsilon;
                    Pair(tn.Var, src.Add($"{n.Var}#eps{delta.ToString("G6", CultureInfo.InvariantCulture)}", dtype, src.TryGetTensor(n.Var, out var vi) ? vi.Shape : new Shape(outs),
                        () => src.Values(n.Var).Select(v => v + delta).ToArray()));
                    how = FormattableString.Invariant($"running_var + ({n.Epsilon:G6} − {TargetEpsilon:G6}): the source's BatchNorm ε is {n.Epsilon:G6}, the target's {TargetEpsilon:G6}");
                }
                else
                {
                    Pair(tn.Var, n.Var);
                }
            }
            else
            {
                // BatchNorm folded into the source's conv: the target's BatchNorm becomes the identity with the folded bias
                // as its shift. (x − 0)/√((1 − ε) + ε)·1 + b' = x + b' exactly in eval mode.
                Pair(tn.Scale, src.Add($"{s.Weight}#identity-bn.weight", dtype, new Shape(outs), () => Filled(outs, 1)));
                Pair(tn.Shift, s.Bias ?? src.Add($"{s.Weight}#zero-bias", dtype, new Shape(outs), () => new double[outs]));
                Pair(tn.Mean, src.Add($"{s.Weight}#identity-bn.running_mean", dtype, new Shape(outs), () => new double[outs]));
                Pair(tn.Var, src.Add($"{s.Weight}#identity-bn.running_var", dtype, new Shape(outs), () => Filled(outs, 1 - TargetEpsilon)));
                how = $"BatchNorm folded in the source: {tn.Layer} set to the identity (weight 1, running_mean 0, running_var 1−ε) with the conv's folded bias as its shift";
            }
            if (tn.Count is { } count && template.TryGetValue(count, out var ci) && !matches.ContainsKey(count))
            {
                Pair(count, src.Add($"{s.Weight}#num_batches_tracked", ci.DType, ci.Shape, () => new double[ci.Shape.ElementCount]));
            }
        }
        return how;
    }

    private static double[] Filled(long n, double value)
    {
        var a = new double[n];
        Array.Fill(a, value);
        return a;
    }

    private static double[] Transpose(double[] a, long rows, long cols)
    {
        var r = new double[a.Length];
        for (long i = 0; i < rows; i++)
        {
            for (long j = 0; j < cols; j++)
            {
                r[j * rows + i] = a[i * cols + j];
            }
        }
        return r;
    }

    private static double[] Factor(MatchedSource src, NormTensors n)
    {
        var g = src.Values(n.Scale);
        var v = src.Values(n.Var);
        return g.Select((x, i) => x / Math.Sqrt(v[i] + n.Epsilon)).ToArray();
    }

    private static double[] FoldWeight(MatchedSource src, LayerUnit s, NormTensors n)
    {
        var w = src.Values(s.Weight);
        var f = Factor(src, n);
        long per = w.Length / f.Length;
        for (long i = 0; i < w.Length; i++)
        {
            w[i] *= f[i / per];
        }
        return w;
    }

    private static double[] FoldBias(MatchedSource src, LayerUnit s, NormTensors n)
    {
        var f = Factor(src, n);
        var beta = src.Values(n.Shift);
        var mean = src.Values(n.Mean);
        var b = s.Bias is null ? new double[f.Length] : src.Values(s.Bias);
        return f.Select((x, i) => (b[i] - mean[i]) * x + beta[i]).ToArray();
    }
}
