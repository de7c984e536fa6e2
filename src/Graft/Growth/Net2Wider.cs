using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Growth;

/// <summary>
/// Widens a network without changing what it computes (Chen, Goodfellow and Shlens, Net2Net, 2016), or with new units
/// that start silent. The caller builds the wider target module and names the width groups; every target tensor then
/// gets one <see cref="WeightTransform"/>: producers and their BatchNorm select out-channels by the group's map,
/// consumers follow it on their inputs (dividing by the replica count, or giving new inputs zero weights).
/// Tensors outside every group must keep their shape and are copied.
/// </summary>
public static class Net2Wider
{
    /// <summary>Plans a widening of <paramref name="source"/> into the shapes (and, for templates, values) of <paramref name="target"/>.</summary>
    /// <exception cref="ArgumentException">A group is inconsistent, or a tensor's shapes cannot be reconciled (the message names it).</exception>
    public static GrowthPlan Plan(nn.Module source, nn.Module target, IEnumerable<WidthGroup> groups, WidenOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        return Plan(source.state_dict(), target.state_dict(), groups, options);
    }

    /// <summary>Plans a widening and applies it into <paramref name="target"/> in place; returns the plan as the report.</summary>
    public static GrowthPlan Apply(nn.Module source, nn.Module target, IEnumerable<WidthGroup> groups, WidenOptions? options = null)
    {
        var plan = Plan(source, target, groups, options);
        plan.ApplyTo(source, target);
        return plan;
    }

    /// <summary>
    /// Plans a widening between two state dicts (names → tensors). Only the shapes of <paramref name="source"/> are read;
    /// <paramref name="target"/>'s values are read when new units keep the target's own initialisation.
    /// </summary>
    public static GrowthPlan Plan(IReadOnlyDictionary<string, Tensor> source, IReadOnlyDictionary<string, Tensor> target,
        IEnumerable<WidthGroup> groups, WidenOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(groups);
        options ??= WidenOptions.Default;
        if (options.Noise < 0 || !double.IsFinite(options.Noise))
        {
            throw new ArgumentOutOfRangeException(nameof(options), "Noise must be a finite non-negative number.");
        }
        var groupList = groups.ToList();
        var outOf = new Dictionary<string, (ChannelMap Map, bool IsNorm)>(StringComparer.Ordinal);
        var inOf = new Dictionary<string, ChannelMap>(StringComparer.Ordinal);
        var maps = new List<GroupMap>();
        for (int g = 0; g < groupList.Count; g++)
        {
            var group = groupList[g] ?? throw new ArgumentException("A width group is null.", nameof(groups));
            var map = MapFor(group, g, source, target, options);
            maps.Add(new GroupMap(group, map));
            foreach (var p in group.Producers)
            {
                AddOnce(outOf, p, (map, false), group, "produces channels");
            }
            foreach (var n in group.Channelwise)
            {
                AddOnce(outOf, n, (map, true), group, "produces channels");
            }
            foreach (var c in group.Consumers)
            {
                if (c.BlockSize < 1)
                {
                    throw new ArgumentException($"Consumer {c.Layer} of group {group}: block size must be at least 1.", nameof(groups));
                }
                AddOnce(inOf, c.Layer, c.BlockSize == 1 ? map : map.ExpandBlocks(c.BlockSize), group, "consumes channels");
            }
        }

        var steps = new List<GrowthStep>();
        foreach (var (name, t) in target)
        {
            if (!source.TryGetValue(name, out var s))
            {
                throw new ArgumentException($"'{name}': the target has this tensor but the source does not; widening keeps the architecture's names.", nameof(target));
            }
            var transform = TensorTransform(name, t, options, outOf, inOf);
            var srcShape = new Shape(s.shape);
            var tgtShape = new Shape(t.shape);
            Shape produced;
            try
            {
                produced = transform.OutputShape(srcShape);
            }
            catch (ArgumentException ex)
            {
                throw new ArgumentException($"'{name}': source {srcShape} cannot become target {tgtShape}: {ex.Message}", nameof(groups), ex);
            }
            if (produced != tgtShape)
            {
                throw new ArgumentException($"'{name}': source {srcShape} would become {produced}, but the target is {tgtShape}" +
                    (ReferenceEquals(transform, WeightTransform.Identity) ? "; is its layer missing from a width group?" : "."), nameof(groups));
            }
            steps.Add(new GrowthStep(name, srcShape, tgtShape, transform));
        }
        foreach (var layer in outOf.Keys.Concat(inOf.Keys))
        {
            if (!target.Keys.Any(k => TensorName.LayerOf(k) == layer))
            {
                throw new ArgumentException($"Width group layer '{layer}' has no tensors in the target.", nameof(groups));
            }
        }

        bool noisy = options.Method == WidenMethod.Net2Wider && options.Noise > 0 && maps.Any(m => m.Map.TargetCount > m.Map.SourceCount);
        var notes = new List<string>();
        foreach (var m in maps.Where(m => m.Map.TargetCount != m.Map.SourceCount))
        {
            notes.Add(options.Method == WidenMethod.Net2Wider
                ? $"{m.Group}: {m.Map.SourceCount}→{m.Map.TargetCount} channels, new channels copy [{string.Join(", ", m.Map.Indices.Skip((int)m.Map.SourceCount))}]; consumers divide by replica counts"
                : $"{m.Group}: {m.Map.SourceCount}→{m.Map.TargetCount} channels, new channels from {(options.NewUnits == NewUnitInit.Template ? "the target's init" : "Kaiming-normal")} with zero outgoing weights");
        }
        notes.Add(noisy
            ? FormattableString.Invariant($"noise (std {options.Noise:g4} × weight std) on copied filters breaks exactness: outputs differ from the source's")
            : "function-preserving: outputs equal the source's in eval mode, up to rounding");
        return new GrowthPlan(steps, maps, !noisy, notes);
    }

    private static ChannelMap MapFor(WidthGroup group, int index, IReadOnlyDictionary<string, Tensor> source, IReadOnlyDictionary<string, Tensor> target, WidenOptions options)
    {
        if (group.Producers.Count == 0)
        {
            throw new ArgumentException($"Width group {group} has no producer.", nameof(group));
        }
        (long Source, long Target)? widths = null;
        foreach (var layer in group.Producers.Concat(group.Channelwise))
        {
            var name = layer + ".weight";
            if (!source.TryGetValue(name, out var s) || !target.TryGetValue(name, out var t))
            {
                throw new ArgumentException($"Width group {group}: '{name}' is missing from the source or the target.", nameof(group));
            }
            if (s.dim() != t.dim() || s.dim() < 1)
            {
                throw new ArgumentException($"Width group {group}: '{name}' has rank {s.dim()} in the source and {t.dim()} in the target.", nameof(group));
            }
            var w = (s.shape[0], t.shape[0]);
            if (widths is not null && widths != w)
            {
                throw new ArgumentException($"Width group {group}: '{name}' goes {w.Item1}→{w.Item2} channels, another member {widths.Value.Source}→{widths.Value.Target}; layers of a group share one width.", nameof(group));
            }
            widths = w;
        }
        var (n, m) = widths!.Value;
        if (m < n)
        {
            throw new ArgumentException($"Width group {group}: {n}→{m} channels; growth only widens (use transfer to shrink).", nameof(group));
        }
        return options.Method == WidenMethod.Net2Wider
            ? ChannelMap.Net2Wider(n, m, Mix(options.Seed, "group" + index))
            : ChannelMap.First(n, m);
    }

    private static WeightTransform TensorTransform(string name, Tensor target, WidenOptions options,
        Dictionary<string, (ChannelMap Map, bool IsNorm)> outOf, Dictionary<string, ChannelMap> inOf)
    {
        var (layer, member) = (TensorName.LayerOf(name), TensorName.MemberOf(name));
        int rank = (int)target.dim();
        bool isMatrix = member == "weight" && rank >= 2;
        var layout = isMatrix ? Layout.DefaultForRank(rank) : Layout.Vector;
        var steps = new List<WeightTransform>();
        if (isMatrix && inOf.TryGetValue(layer, out var inMap))
        {
            steps.Add(options.Method == WidenMethod.Net2Wider ? InChannels.Net2Wider(layout, inMap) : InChannels.Follow(layout, inMap));
        }
        if (outOf.TryGetValue(layer, out var o) && rank >= 1 && (isMatrix || rank == 1))
        {
            var fill = options.Method == WidenMethod.Net2Wider || o.Map.NewCount == 0 ? ChannelFill.Zeros
                : o.IsNorm || options.NewUnits == NewUnitInit.Template ? ChannelFill.FromTemplate(target)
                : isMatrix ? ChannelFill.KaimingNormal(Mix(options.Seed, name))
                : ChannelFill.Zeros;
            steps.Add(OutChannels.Apply(layout, o.Map, fill));
            if (options.Method == WidenMethod.Net2Wider && options.Noise > 0 && isMatrix && !o.IsNorm && o.Map.TargetCount > o.Map.SourceCount)
            {
                var fresh = Enumerable.Range((int)o.Map.SourceCount, (int)(o.Map.TargetCount - o.Map.SourceCount)).Select(j => (long)j);
                steps.Add(new ChannelNoise(layout.OutAxis, fresh, options.Noise, Mix(options.Seed, "noise:" + name)));
            }
        }
        return Chain.Of(steps);
    }

    private static void AddOnce<T>(Dictionary<string, T> map, string layer, T value, WidthGroup group, string role)
    {
        ArgumentException.ThrowIfNullOrEmpty(layer);
        if (!map.TryAdd(layer, value))
        {
            throw new ArgumentException($"Layer '{layer}' {role} in more than one width group (again in {group}); residual branches belong in one group.", nameof(group));
        }
    }

    /// <summary>A stable per-purpose seed (FNV-1a of the text, mixed with the user's seed): string.GetHashCode is randomised per process.</summary>
    internal static long Mix(long seed, string purpose)
    {
        ulong h = 14695981039346656037UL ^ unchecked((ulong)seed);
        foreach (var ch in purpose)
        {
            h = unchecked((h ^ ch) * 1099511628211UL);
        }
        return unchecked((long)(h & 0x7FFF_FFFF_FFFF_FFFFUL));
    }
}
