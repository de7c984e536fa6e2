using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// The planner's channel-group stage: declared groups merged with traced ones (declared win, and neither may contradict
/// the other), checked against the template, and each group's shared out decision computed once from names and shapes.
/// </summary>
internal sealed class ChannelGroupDecisions
{
    private readonly PlanningContext _context;
    private readonly List<(ChannelGroup Group, ChannelGroupOrigin Origin)> _groups;
    private readonly Dictionary<string, string> _unknown;
    private readonly Dictionary<string, OutDecision?> _decisions = new(StringComparer.Ordinal);

    public ChannelGroupDecisions(PlanningContext context, IReadOnlyList<ChannelGroup> declared, ChannelGroups traced)
    {
        _context = context;
        (_groups, _unknown) = Merge(declared, traced);
        var layers = new HashSet<string>(context.Template.Select(t => TensorName.LayerOf(t.Name)), StringComparer.Ordinal);
        foreach (var (g, origin) in _groups)
        {
            var missing = g.Producers.Concat(g.Consumers.Select(c => c.Layer)).FirstOrDefault(l => !layers.Contains(l));
            if (missing is not null)
            {
                throw new TransferPlanException($"Channel group [{g}] ({PolicyWords.Word(origin)}) names layer '{missing}', which the template does not have.");
            }
        }
    }

    /// <summary>The decision <paramref name="layer"/> shares as a producer of a group, or null.</summary>
    public OutDecision? ProducedDecision(string layer)
    {
        var g = _groups.FirstOrDefault(x => x.Group.Producers.Contains(layer)).Group;
        return g is null ? null : DecisionOf(g);
    }

    /// <summary>The group <paramref name="layer"/> reads as a consumer, with the group's decision, or null.</summary>
    public (ChannelConsumer Consumer, OutDecision? Decision)? FeedingDecision(string layer)
    {
        foreach (var (g, _) in _groups)
        {
            var c = g.Consumers.FirstOrDefault(c => c.Layer == layer);
            if (c is not null)
            {
                return (c, DecisionOf(g));
            }
        }
        return null;
    }

    /// <summary>Why a largest-norm selection of <paramref name="layer"/>'s channels is unsafe (its readers are unknown), or null.</summary>
    public string? WhyUnsafe(string layer, TensorInfo target, long tgtOut)
    {
        if (_unknown.TryGetValue(layer, out var why))
        {
            return $"the layers reading its channels are unknown ({why}); declare a channel group to decide";
        }
        if (_groups.Any(g => g.Group.Producers.Contains(layer)))
        {
            return null;
        }
        // Without dependency information, any layer whose width changes with these channels may read them.
        var candidates = new List<string>();
        foreach (var other in _context.Template.GroupBy(t => TensorName.LayerOf(t.Name), StringComparer.Ordinal).Where(l => l.Key != layer))
        {
            var w = other.FirstOrDefault(IsChannelWeight);
            var src = w is null ? null : _context.FindSource(w.Name);
            if (w is not null && src is not null && src.Shape.Rank == w.Shape.Rank)
            {
                var layout = _context.RulesFor(w.Name).Layout ?? Layout.DefaultForRank(w.Shape.Rank);
                if (layout.InAxis >= 0 && w.Shape[layout.InAxis] % tgtOut == 0 && w.Shape[layout.InAxis] != src.Shape[layout.InAxis])
                {
                    candidates.Add(other.Key);
                }
                continue;
            }
            if (w is null && other.FirstOrDefault(t => t.Shape.Rank == 1) is { } v && _context.FindSource(v.Name) is { } vs
                && v.Shape[0] == tgtOut && vs.Shape.Rank == 1 && vs.Shape[0] != tgtOut)
            {
                candidates.Add(other.Key);
            }
        }
        return candidates.Count == 0 ? null
            : $"no dependency information for {target.Name}, and {string.Join(", ", candidates)} may carry or read its channels; " +
              "declare a channel group (--group), or trace the model (library)";
    }

    /// <summary>The groups as the plan records them, with their decisions.</summary>
    public List<PlannedGroup> Planned() =>
        _groups.Select(g => new PlannedGroup(g.Group.Key, g.Group.Producers, g.Group.Consumers, g.Origin, DecisionOf(g.Group))).ToList();

    /// <summary>A layer's weight with channel axes (conv, linear, head): what decides the layer.</summary>
    private bool IsChannelWeight(TensorInfo t) => _context.RoleOf(t.Name).IsLayerWeight();

    private OutDecision? DecisionOf(ChannelGroup g)
    {
        if (_decisions.TryGetValue(g.Key, out var cached))
        {
            return cached;
        }
        var policy = _context.Policy;
        var counts = new List<(string Layer, long Src, long Tgt)>();
        var norms = new List<NormWeight>();
        var shrinks = new List<(string Layer, OutShrinkRule Rule)>();
        var fresh = new List<(string Layer, NewChannelRule Rule)>();
        foreach (var p in g.Producers)
        {
            var members = _context.Template.Where(t => TensorName.LayerOf(t.Name) == p).ToList();
            var w = members.FirstOrDefault(IsChannelWeight);
            var rules = _context.RulesFor(w?.Name ?? members[0].Name);
            fresh.Add((p, rules.NewChannels ?? policy.NewChannels));
            if (w is not null)
            {
                var layout = rules.Layout ?? Layout.DefaultForRank(w.Shape.Rank);
                shrinks.Add((p, rules.OutShrink ?? policy.OutShrink));
                if (_context.FindSource(w.Name) is { } src && src.Shape.Rank == w.Shape.Rank && layout.HasChannels)
                {
                    counts.Add((p, src.Shape[layout.OutAxis], w.Shape[layout.OutAxis]));
                    norms.Add(new NormWeight(src.Name, layout));
                    if (layout.Groups != 1 && layout.Kind == LayerKind.Conv && src.Shape[layout.OutAxis] != w.Shape[layout.OutAxis])
                    {
                        throw new TransferPlanException($"Channel group [{g}]: {w.Name} is a grouped convolution; its channels cannot follow a group decision.");
                    }
                }
            }
            else if (members.FirstOrDefault(t => t.Shape.Rank == 1) is { } v && _context.FindSource(v.Name) is { } vs && vs.Shape.Rank == 1)
            {
                counts.Add((p, vs.Shape[0], v.Shape[0]));
            }
        }
        OutDecision? decision = null;
        if (counts.Count > 0)
        {
            if (counts.Select(c => (c.Src, c.Tgt)).Distinct().Count() > 1)
            {
                throw new TransferPlanException($"Channel group [{g}] disagrees on its channel counts: " +
                    string.Join(", ", counts.Select(c => $"{c.Layer} {c.Src}→{c.Tgt}")) + ".");
            }
            if (shrinks.Select(s => s.Rule).Distinct().Count() > 1)
            {
                throw new TransferPlanException($"Channel group [{g}] disagrees on its shrink rule: " +
                    string.Join(", ", shrinks.Select(s => $"{s.Layer} {RuleSteps.Name(s.Rule)}")) + "; all producers of a group share one decision.");
            }
            if (fresh.Select(s => s.Rule).Distinct().Count() > 1)
            {
                throw new TransferPlanException($"Channel group [{g}] disagrees on its new-channel rule: " +
                    string.Join(", ", fresh.Select(s => $"{s.Layer} {RuleSteps.Name(s.Rule)}")) + ".");
            }
            var (_, srcCount, tgtCount) = counts[0];
            if (srcCount != tgtCount)
            {
                var shrink = tgtCount < srcCount && shrinks.Count > 0 ? shrinks[0].Rule : OutShrinkRule.First;
                decision = new OutDecision(g.Key, shrink, fresh[0].Rule, srcCount, tgtCount, 1)
                {
                    DependencyGroup = g.Key,
                    NormSources = shrink == OutShrinkRule.First ? [] : norms,
                };
            }
        }
        _decisions[g.Key] = decision;
        return decision;
    }

    /// <summary>Declared groups win; traced ones fill in the rest, and must not contradict a declared one.</summary>
    private static (List<(ChannelGroup Group, ChannelGroupOrigin Origin)> Groups, Dictionary<string, string> Unknown) Merge(IReadOnlyList<ChannelGroup> declared, ChannelGroups traced)
    {
        Validate(declared, ChannelGroupOrigin.Declared);
        Validate(traced.Groups, traced.Origin);
        var result = declared.Select(g => (g, ChannelGroupOrigin.Declared)).ToList();
        var declaredLayers = new HashSet<string>(declared.SelectMany(g => g.Producers), StringComparer.Ordinal);
        foreach (var d in declared)
        {
            foreach (var t in traced.Groups.Where(t => t.Producers.Any(d.Producers.Contains)))
            {
                bool sameProducers = t.Producers.ToHashSet(StringComparer.Ordinal).SetEquals(d.Producers);
                bool sameConsumers = t.Consumers.Select(c => c.Layer).ToHashSet(StringComparer.Ordinal).SetEquals(d.Consumers.Select(c => c.Layer));
                if (!sameProducers || !sameConsumers)
                {
                    throw new TransferPlanException($"Channel groups disagree: declared group [{d}] and {PolicyWords.Word(traced.Origin)} group [{t}].");
                }
            }
        }
        result.AddRange(traced.Groups.Where(t => !t.Producers.Any(declaredLayers.Contains)).Select(t => (t, traced.Origin)));
        var unknown = traced.Unknown.Where(kv => !declaredLayers.Contains(kv.Key)).ToDictionary(StringComparer.Ordinal);
        return (result, unknown);
    }

    private static void Validate(IReadOnlyList<ChannelGroup> groups, ChannelGroupOrigin origin)
    {
        var producerOf = new Dictionary<string, ChannelGroup>(StringComparer.Ordinal);
        var consumerOf = new Dictionary<string, ChannelGroup>(StringComparer.Ordinal);
        foreach (var g in groups)
        {
            if (g.Producers.Count == 0)
            {
                throw new TransferPlanException($"Channel group [{g}] ({PolicyWords.Word(origin)}) has no producer.");
            }
            foreach (var p in g.Producers)
            {
                if (producerOf.TryGetValue(p, out var other) && !ReferenceEquals(other, g))
                {
                    throw new TransferPlanException($"Channel groups disagree: {p} produces channels in [{other}] and in [{g}] ({PolicyWords.Word(origin)}).");
                }
                producerOf[p] = g;
            }
            foreach (var c in g.Consumers)
            {
                if (consumerOf.TryGetValue(c.Layer, out var other) && !ReferenceEquals(other, g))
                {
                    throw new TransferPlanException($"Channel groups disagree: {c.Layer} reads channels of [{other}] and of [{g}] ({PolicyWords.Word(origin)}).");
                }
                consumerOf[c.Layer] = g;
            }
        }
    }
}
