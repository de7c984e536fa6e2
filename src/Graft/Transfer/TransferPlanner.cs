using System.Text.RegularExpressions;
using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// Makes a <see cref="TransferPlan"/> from tensor descriptions alone (names, dtypes, shapes): no data is read, so a
/// plan for a huge checkpoint is instant and every shape is checked before anything moves.
/// </summary>
public static class TransferPlanner
{
    private static readonly string[] VectorMembers = ["bias", "running_mean", "running_var"];

    /// <summary>Plans the transfer of <paramref name="source"/> tensors into the shapes of <paramref name="template"/>.</summary>
    /// <exception cref="TransferPlanException">A rule asks for something that cannot be applied to a tensor.</exception>
    /// <param name="source">Source tensors.</param>
    /// <param name="template">Target tensors (shapes and init).</param>
    /// <param name="policy">The policy; its declared <see cref="TransferPolicy.Groups"/> take part.</param>
    /// <param name="sourcePath">Names the source in the plan.</param>
    /// <param name="templatePath">Names the template in the plan.</param>
    /// <param name="groups">Dependency groups known otherwise (traced from a module); checked against declared ones.</param>
    /// <exception cref="TransferPlanException">
    /// A rule asks for something that cannot be applied to a tensor; rename rules conflict; dependency groups disagree.
    /// </exception>
    public static TransferPlan Plan(IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template, TransferPolicy policy,
        string sourcePath = "<source>", string templatePath = "<template>", ChannelGroups? groups = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(policy);
        var planner = new State(source, template, policy, groups ?? ChannelGroups.None);
        var targets = planner.Run();
        var used = new HashSet<string>(targets.Where(t => t.Source is not null).Select(t => t.Source!.Name), StringComparer.Ordinal);
        var unused = source.Where(s => !used.Contains(s.Name)).ToList();
        return new TransferPlan(sourcePath, templatePath, targets, unused, policy) { Groups = planner.PlannedGroups(), Notes = planner.Notes };
    }

    /// <summary>The layer a tensor belongs to: its name without the last dotted part.</summary>
    public static string LayerOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        int dot = name.LastIndexOf('.');
        return dot < 0 ? "" : name[..dot];
    }

    private static string MemberOf(string name) => name[(name.LastIndexOf('.') + 1)..];

    private sealed class State
    {
        private readonly IReadOnlyList<TensorInfo> _template;
        private readonly TransferPolicy _policy;
        private readonly Dictionary<string, TensorInfo> _sourceByName = new(StringComparer.Ordinal);
        private readonly IReadOnlyDictionary<string, NameMatch> _matches;
        private readonly Regex _head;
        private readonly string? _lastLinear;
        private readonly string? _firstConv;
        private readonly GroupState _groups;

        public List<string> Notes { get; } = [];

        private const string HeadPatternWhat = "Head pattern (TransferPolicy.HeadPattern)";

        private bool IsHead(string name)
        {
            try
            {
                return _head.IsMatch(name);
            }
            catch (RegexMatchTimeoutException)
            {
                throw NamePatterns.TimedOut(HeadPatternWhat, _policy.HeadPattern, name);
            }
        }

        public State(IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template, TransferPolicy policy, ChannelGroups traced)
        {
            _template = template;
            _policy = policy;
            _head = NamePatterns.CompileRegex(policy.HeadPattern, HeadPatternWhat);
            foreach (var s in source)
            {
                _sourceByName[s.Name] = s;
            }
            _matches = NameMatcher.Match(source, template, policy);
            foreach (var m in _matches.Values.Where(m => m.Kind == MatchKind.Structural))
            {
                Notes.Add($"structural guess: {m.Target} ← {m.Source} (refuse with a rule {{ Structural = false }} on the target)");
            }
            _lastLinear = template.LastOrDefault(t => t.Shape.Rank == 2 && MemberOf(t.Name) == "weight")?.Name;
            _firstConv = template.FirstOrDefault(t => t.Shape.Rank >= 3 && MemberOf(t.Name) == "weight")?.Name;
            _groups = new GroupState(this, Merge(policy.Groups, traced));
        }

        public List<TargetPlan> Run()
        {
            var plans = new Dictionary<string, TargetPlan>(StringComparer.Ordinal);
            var layers = _template.GroupBy(t => LayerOf(t.Name), StringComparer.Ordinal);
            foreach (var layer in layers)
            {
                foreach (var p in PlanLayer(layer.Key, layer.ToList()))
                {
                    plans[p.Target.Name] = p;
                }
            }
            return _template.Select(t => plans[t.Name]).ToList();
        }

        private TensorInfo? FindSource(string targetName) =>
            _matches.TryGetValue(targetName, out var m) ? _sourceByName[m.Source] : null;

        private NameMatch? MatchOf(string targetName) => _matches.TryGetValue(targetName, out var m) ? m : null;

        private (TensorRule Merged, bool Any) RulesFor(string name)
        {
            var merged = new TensorRule("*");
            bool any = false;
            foreach (var r in _policy.Rules.Where(r => r.Matches(name)))
            {
                any = true;
                merged = merged with
                {
                    OutShrink = r.OutShrink ?? merged.OutShrink,
                    NewChannels = r.NewChannels ?? merged.NewChannels,
                    InChannels = r.InChannels ?? merged.InChannels,
                    Kernel = r.Kernel ?? merged.Kernel,
                    Head = r.Head ?? merged.Head,
                    Skip = r.Skip ?? merged.Skip,
                    Reinit = r.Reinit ?? merged.Reinit,
                    Layout = r.Layout ?? merged.Layout,
                    Structural = r.Structural ?? merged.Structural,
                };
            }
            return (merged, any);
        }

        private List<TargetPlan> PlanLayer(string layer, List<TensorInfo> members)
        {
            // A layer's decision comes from a weight with channel axes; a rank-1 "weight" (BatchNorm, LayerNorm scale)
            // is one of the layer's vectors.
            var weight = members.FirstOrDefault(m => MemberOf(m.Name) == "weight" && m.Shape.Rank >= 2);
            var rules = RulesFor(weight?.Name ?? members[0].Name).Merged;
            OutDecision? decision = null;
            string? layerKeptReason = null;
            var result = new List<TargetPlan>();

            if (weight is not null)
            {
                var (plan, dec, keptReason) = PlanWeight(layer, weight, rules);
                result.Add(plan);
                decision = dec;
                layerKeptReason = keptReason;
            }
            foreach (var m in members.Where(m => !ReferenceEquals(m, weight)))
            {
                result.Add(PlanMember(layer, m, weight, decision, layerKeptReason));
            }
            return result;
        }

        private (TargetPlan Plan, OutDecision? Decision, string? KeptReason) PlanWeight(string layer, TensorInfo target, TensorRule rules)
        {
            var source = FindSource(target.Name);
            var layout = rules.Layout ?? Layout.DefaultForRank(target.Shape.Rank);
            var basePlan = new TargetPlan { Target = target, Source = source, Status = TargetStatus.Kept, Reason = "", Layout = layout, Layer = layer, Match = MatchOf(target.Name) };

            if (source is null)
            {
                return (basePlan with { Source = null, Reason = "no source tensor of this name" }, null, null);
            }
            if (rules.Skip == true)
            {
                return (basePlan with { Source = null, Reason = "skipped by a rule; the template's init is kept" }, null, "skipped by a rule");
            }
            if (rules.Reinit == true && target.Shape.Rank >= 2 && target.DType.IsFloatingPoint())
            {
                return (basePlan with { Source = null, Status = TargetStatus.Reinitialized, Reason = "reinitialised by a rule: Kaiming-normal (fan_out, relu); the bias keeps the template's init" },
                    null, "weight reinitialised");
            }
            if (target.Shape == source.Shape)
            {
                return (SameShape(basePlan, source, target), null, null);
            }
            if (target.Shape.Rank != source.Shape.Rank)
            {
                return (basePlan with { Source = null, Reason = $"rank differs (source {source.Shape}, target {target.Shape}); nothing carried over" }, null, "weight not transferred");
            }
            if (!layout.HasChannels || layout.Kind == LayerKind.Scalar)
            {
                return (basePlan with { Source = null, Reason = $"shapes differ (source {source.Shape}, target {target.Shape}) and a {layout} tensor has no channel roles" }, null, "weight not transferred");
            }
            if (!target.DType.IsFloatingPoint() || TensorBridge.ToScalarType(source.DType) is null || TensorBridge.ToScalarType(target.DType) is null)
            {
                return (basePlan with { Source = null, Reason = $"shapes differ and dtype {source.DType}→{target.DType} cannot be computed on" }, null, "weight not transferred");
            }
            layout.Check(target.Shape, target.Name);

            long srcOut = source.Shape[layout.OutAxis], tgtOut = target.Shape[layout.OutAxis];
            bool isHead = layout.Kind == LayerKind.Linear && srcOut != tgtOut
                && (IsHead(target.Name) || target.Name == _lastLinear || rules.Head is not null);
            var headRule = rules.Head ?? _policy.Head;
            if (isHead && headRule == HeadRule.Template)
            {
                return (basePlan with { Source = null, NewHead = true, Reason = $"classifier head with another class count ({srcOut}→{tgtOut}); the target's own init is kept" }, null, "classifier head kept from the template");
            }

            var kernelRule = rules.Kernel ?? _policy.Kernel;
            bool kernelDiffers = layout.KernelAxes.Any(a => source.Shape[a] != target.Shape[a]);
            if (kernelDiffers && kernelRule == KernelRule.Reinit)
            {
                return (basePlan with
                {
                    Source = null,
                    Status = TargetStatus.Reinitialized,
                    Reason = $"kernel {Kernel(source.Shape, layout)}→{Kernel(target.Shape, layout)} with rule reinit: Kaiming-normal (fan_out, relu); the bias keeps the template's init",
                }, null, "weight reinitialised");
            }

            var reasons = new List<string>();
            InStep? inStep = null;
            long srcIn = source.Shape[layout.InAxis], tgtIn = target.Shape[layout.InAxis];
            if (srcIn != tgtIn)
            {
                if (_groups.FeedingDecision(layer) is { Decision: { } followed } feeding)
                {
                    long block = feeding.Consumer.BlockSize;
                    if (followed.SourceCount * block != srcIn || followed.TargetCount * block != tgtIn)
                    {
                        throw new TransferPlanException($"Channel group {followed.Group} disagrees with {target.Name}: the group has {followed.SourceCount}→{followed.TargetCount} channels" +
                            (block == 1 ? "" : $" × block {block}") + $", but the layer reads {srcIn}→{tgtIn} inputs.");
                    }
                    inStep = new InStep(tgtIn < srcIn ? InChannelRule.Truncate : InChannelRule.ZeroExtend, srcIn, tgtIn) { Follows = followed, BlockSize = block };
                    reasons.Add($"inputs {srcIn}→{tgtIn}: follow the out decision of {followed.Group} ({(tgtIn < srcIn ? "keep " + ShrinkName(followed.Shrink) : "new inputs get zero weights")})"
                        + (block == 1 ? "" : $", in blocks of {block} features per channel"));
                }
                else
                {
                    var rule = ResolveIn(rules.InChannels ?? _policy.InChannels, layout, srcIn, tgtIn, target.Name, out var why);
                    inStep = new InStep(rule, srcIn, tgtIn);
                    reasons.Add(why);
                }
            }
            KernelStep? kernelStep = null;
            if (kernelDiffers)
            {
                kernelStep = new KernelStep(kernelRule, layout.KernelAxes.Select(a => target.Shape[a]).ToArray());
                reasons.Add($"kernel {Kernel(source.Shape, layout)}→{Kernel(target.Shape, layout)} by {KernelName(kernelRule)}");
            }
            OutDecision? decision = null;
            if (srcOut != tgtOut && _groups.ProducedDecision(layer) is { } shared)
            {
                if (shared.SourceCount != srcOut || shared.TargetCount != tgtOut)
                {
                    throw new TransferPlanException($"Channel group {shared.Group} disagrees with {target.Name}: the group has {shared.SourceCount}→{shared.TargetCount} channels, the layer {srcOut}→{tgtOut}.");
                }
                decision = shared;
                reasons.Add(tgtOut < srcOut
                    ? $"out channels {srcOut}→{tgtOut}: keep {ShrinkName(decision.Shrink)}, shared by group {shared.Group}"
                    : $"out channels {srcOut}→{tgtOut}: new channels from {NewName(decision.NewChannels)} (group {shared.Group})");
            }
            else if (srcOut != tgtOut)
            {
                var shrink = rules.OutShrink ?? _policy.OutShrink;
                if (shrink != OutShrinkRule.First && tgtOut < srcOut && _groups.WhyUnsafe(layer, target, tgtOut) is { } unsafeWhy)
                {
                    Notes.Add($"{layer}: {ShrinkName(shrink)} asked, first-n used: {unsafeWhy}");
                    reasons.Add($"largest-norm asked but first-n used: {unsafeWhy}");
                    shrink = OutShrinkRule.First;
                }
                var fresh = rules.NewChannels ?? _policy.NewChannels;
                int groups = layout.Kind == LayerKind.Conv ? layout.Groups : 1;
                if (shrink != OutShrinkRule.First && tgtOut < srcOut && groups != 1)
                {
                    throw new TransferPlanException($"{target.Name}: largest-norm selection is not supported on grouped convolutions (groups={groups}); use first.");
                }
                decision = new OutDecision(layer, tgtOut < srcOut ? shrink : OutShrinkRule.First, fresh, srcOut, tgtOut, groups)
                {
                    NormSources = tgtOut < srcOut && shrink != OutShrinkRule.First ? [new NormWeight(source.Name, layout)] : [],
                };
                reasons.Add(tgtOut < srcOut
                    ? $"out channels {srcOut}→{tgtOut}: keep {ShrinkName(decision.Shrink)}"
                    : $"out channels {srcOut}→{tgtOut}: new channels from {NewName(fresh)}");
            }
            // Zeros on new inputs and around a padded kernel are part of the carried-over function; only new out
            // channels from the template, zeros or random are values the source did not provide.
            bool complete = decision is null || decision.TargetCount <= decision.SourceCount || decision.NewChannels == NewChannelRule.Copies;
            return (basePlan with
            {
                Status = TargetStatus.Adapted,
                Reason = string.Join("; ", reasons),
                In = inStep,
                Kernel = kernelStep,
                Out = decision,
                Complete = complete,
            }, decision, null);
        }

        private TargetPlan PlanMember(string layer, TensorInfo target, TensorInfo? weight, OutDecision? decision, string? layerKeptReason)
        {
            var source = FindSource(target.Name);
            var layout = Layout.DefaultForRank(target.Shape.Rank);
            var basePlan = new TargetPlan { Target = target, Source = source, Status = TargetStatus.Kept, Reason = "", Layout = layout, Layer = layer, Match = MatchOf(target.Name) };
            var rules = RulesFor(target.Name).Merged;
            if (source is null)
            {
                return basePlan with { Reason = "no source tensor of this name" };
            }
            if (layerKeptReason == "classifier head kept from the template")
            {
                basePlan = basePlan with { NewHead = true };
            }
            if (rules.Skip == true || (layerKeptReason is not null && target.Shape != source.Shape) || (layerKeptReason is not null && MemberOf(target.Name) == "bias"))
            {
                return basePlan with { Source = null, Reason = $"kept from the template: its layer's weight was not transferred ({layerKeptReason ?? "skipped by a rule"})" };
            }
            if (target.Shape == source.Shape)
            {
                return SameShape(basePlan, source, target);
            }
            if (target.Shape.Rank != 1 || source.Shape.Rank != 1 || !VectorMembers.Contains(MemberOf(target.Name)) && !(weight is null && MemberOf(target.Name) == "weight"))
            {
                return basePlan with { Source = null, Reason = $"shapes differ (source {source.Shape}, target {target.Shape}) and the tensor has no channel role" };
            }
            if (!target.DType.IsFloatingPoint() || TensorBridge.ToScalarType(source.DType) is null || TensorBridge.ToScalarType(target.DType) is null)
            {
                return basePlan with { Source = null, Reason = $"shapes differ and dtype {source.DType}→{target.DType} cannot be computed on" };
            }
            // A vector follows its layer's decision; a layer without a weight of its own (a BatchNorm or LayerNorm whose
            // weight is itself a vector) decides first-n, which matches the default decision of the layer feeding it.
            var own = decision ?? (weight is null ? _groups.ProducedDecision(layer) : null);
            string why;
            if (own is not null && decision is null && (own.SourceCount != source.Shape[0] || own.TargetCount != target.Shape[0]))
            {
                throw new TransferPlanException($"Channel group {own.Group} disagrees with {target.Name}: the group has {own.SourceCount}→{own.TargetCount} channels, the tensor {source.Shape[0]}→{target.Shape[0]}.");
            }
            if (own is not null && decision is null)
            {
                why = $"follows group {own.Group}: {(own.TargetCount < own.SourceCount ? "keep " + ShrinkName(own.Shrink) : "new channels from " + NewName(own.NewChannels))}";
            }
            else if (own is not null && own.SourceCount == source.Shape[0] && own.TargetCount == target.Shape[0])
            {
                why = $"follows {layer}.weight: {(own.TargetCount < own.SourceCount ? "keep " + ShrinkName(own.Shrink) : "new channels from " + NewName(own.NewChannels))}";
            }
            else
            {
                var vrules = weight is null ? rules : RulesFor(weight.Name).Merged;
                var fresh = vrules.NewChannels ?? _policy.NewChannels;
                own = new OutDecision(layer, OutShrinkRule.First, fresh, source.Shape[0], target.Shape[0], 1);
                why = target.Shape[0] < source.Shape[0]
                    ? $"channels {source.Shape[0]}→{target.Shape[0]}: keep the first (consistent with a first-n producer)"
                    : $"channels {source.Shape[0]}→{target.Shape[0]}: new channels from {NewName(fresh)}";
            }
            bool complete = own.TargetCount <= own.SourceCount || own.NewChannels == NewChannelRule.Copies;
            return basePlan with { Status = TargetStatus.Adapted, Layout = Layout.Vector, Out = own, Reason = why, Complete = complete };
        }

        private static TargetPlan SameShape(TargetPlan basePlan, TensorInfo source, TensorInfo target) =>
            source.DType == target.DType
                ? basePlan with { Status = TargetStatus.Copied, Reason = "same shape and dtype", Complete = true }
                : basePlan with { Status = TargetStatus.Cast, Reason = $"same shape; dtype {source.DType}→{target.DType}", Complete = true };

        private InChannelRule ResolveIn(InChannelRule rule, Layout layout, long src, long tgt, string name, out string why)
        {
            // A stem is the network's first convolution reading few channels (an image); a narrow interior layer is not.
            bool stem = layout.Kind == LayerKind.Conv && src <= _policy.StemMaxInputs && name == _firstConv;
            if (rule == InChannelRule.Auto)
            {
                (rule, why) = (stem, tgt) switch
                {
                    (true, 1) => (InChannelRule.Sum, $"stem inputs {src}→1: sum over the source inputs"),
                    (true, _) when tgt > src && _policy.StemGrow == InChannelRule.ZeroExtend => (InChannelRule.ZeroExtend, $"stem inputs {src}→{tgt}: new inputs get zero weights (the old function is kept)"),
                    (true, _) when tgt > src => (InChannelRule.RepeatRescale, FormattableString.Invariant($"stem inputs {src}→{tgt}: repeat cyclically and scale by {src}/{tgt}")),
                    (true, _) => (InChannelRule.Truncate, $"stem inputs {src}→{tgt}: keep the first {tgt}"),
                    (false, _) when tgt > src => (InChannelRule.ZeroExtend, $"inputs {src}→{tgt}: new inputs get zero weights (the old function is kept)"),
                    _ => (InChannelRule.Truncate, $"inputs {src}→{tgt}: keep the first {tgt} (follows a first-n producer)"),
                };
                return rule;
            }
            bool ok = rule switch
            {
                InChannelRule.Sum or InChannelRule.Mean or InChannelRule.Truncate => tgt < src,
                InChannelRule.RepeatRescale or InChannelRule.ZeroExtend => tgt > src,
                _ => false,
            };
            if (!ok)
            {
                throw new TransferPlanException($"{name}: in-channel rule {InName(rule)} cannot take {src} inputs to {tgt} " +
                    "(sum, mean and truncate shrink; repeat-rescale and zero-extend grow).");
            }
            why = $"inputs {src}→{tgt}: {InName(rule)} (by rule)";
            return rule;
        }

        private static string Kernel(Shape s, Layout l) => string.Join("×", l.KernelAxes.Select(a => s[a]));

        public List<PlannedGroup> PlannedGroups() => _groups.Planned();

        /// <summary>Declared groups win; traced ones fill in the rest, and must not contradict a declared one.</summary>
        private static (List<(ChannelGroup Group, string Origin)> Groups, Dictionary<string, string> Unknown) Merge(IReadOnlyList<ChannelGroup> declared, ChannelGroups traced)
        {
            Validate(declared, "declared");
            Validate(traced.Groups, traced.Origin);
            var result = declared.Select(g => (g, "declared")).ToList();
            var declaredLayers = new HashSet<string>(declared.SelectMany(g => g.Producers), StringComparer.Ordinal);
            foreach (var d in declared)
            {
                foreach (var t in traced.Groups.Where(t => t.Producers.Any(d.Producers.Contains)))
                {
                    bool sameProducers = t.Producers.ToHashSet(StringComparer.Ordinal).SetEquals(d.Producers);
                    bool sameConsumers = t.Consumers.Select(c => c.Layer).ToHashSet(StringComparer.Ordinal).SetEquals(d.Consumers.Select(c => c.Layer));
                    if (!sameProducers || !sameConsumers)
                    {
                        throw new TransferPlanException($"Channel groups disagree: declared group [{d}] and {traced.Origin} group [{t}].");
                    }
                }
            }
            result.AddRange(traced.Groups.Where(t => !t.Producers.Any(declaredLayers.Contains)).Select(t => (t, traced.Origin)));
            var unknown = traced.Unknown.Where(kv => !declaredLayers.Contains(kv.Key)).ToDictionary(StringComparer.Ordinal);
            return (result, unknown);
        }

        private static void Validate(IReadOnlyList<ChannelGroup> groups, string origin)
        {
            var producerOf = new Dictionary<string, ChannelGroup>(StringComparer.Ordinal);
            var consumerOf = new Dictionary<string, ChannelGroup>(StringComparer.Ordinal);
            foreach (var g in groups)
            {
                if (g.Producers.Count == 0)
                {
                    throw new TransferPlanException($"Channel group [{g}] ({origin}) has no producer.");
                }
                foreach (var p in g.Producers)
                {
                    if (producerOf.TryGetValue(p, out var other) && !ReferenceEquals(other, g))
                    {
                        throw new TransferPlanException($"Channel groups disagree: {p} produces channels in [{other}] and in [{g}] ({origin}).");
                    }
                    producerOf[p] = g;
                }
                foreach (var c in g.Consumers)
                {
                    if (consumerOf.TryGetValue(c.Layer, out var other) && !ReferenceEquals(other, g))
                    {
                        throw new TransferPlanException($"Channel groups disagree: {c.Layer} reads channels of [{other}] and of [{g}] ({origin}).");
                    }
                    consumerOf[c.Layer] = g;
                }
            }
        }

        /// <summary>Shared decisions of dependency groups, computed once per group from names and shapes.</summary>
        private sealed class GroupState
        {
            private readonly State _state;
            private readonly List<(ChannelGroup Group, string Origin)> _groups;
            private readonly Dictionary<string, string> _unknown;
            private readonly Dictionary<string, OutDecision?> _decisions = new(StringComparer.Ordinal);

            public GroupState(State state, (List<(ChannelGroup Group, string Origin)> Groups, Dictionary<string, string> Unknown) merged)
            {
                _state = state;
                (_groups, _unknown) = merged;
                var layers = new HashSet<string>(state._template.Select(t => LayerOf(t.Name)), StringComparer.Ordinal);
                foreach (var (g, origin) in _groups)
                {
                    var missing = g.Producers.Concat(g.Consumers.Select(c => c.Layer)).FirstOrDefault(l => !layers.Contains(l));
                    if (missing is not null)
                    {
                        throw new TransferPlanException($"Channel group [{g}] ({origin}) names layer '{missing}', which the template does not have.");
                    }
                }
            }

            public OutDecision? ProducedDecision(string layer)
            {
                var g = _groups.FirstOrDefault(x => x.Group.Producers.Contains(layer)).Group;
                return g is null ? null : DecisionOf(g);
            }

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
                foreach (var other in _state._template.GroupBy(t => LayerOf(t.Name), StringComparer.Ordinal).Where(l => l.Key != layer))
                {
                    var w = other.FirstOrDefault(t => MemberOf(t.Name) == "weight" && t.Shape.Rank >= 2);
                    var src = w is null ? null : _state.FindSource(w.Name);
                    if (w is not null && src is not null && src.Shape.Rank == w.Shape.Rank)
                    {
                        var layout = _state.RulesFor(w.Name).Merged.Layout ?? Layout.DefaultForRank(w.Shape.Rank);
                        if (layout.InAxis >= 0 && w.Shape[layout.InAxis] % tgtOut == 0 && w.Shape[layout.InAxis] != src.Shape[layout.InAxis])
                        {
                            candidates.Add(other.Key);
                        }
                        continue;
                    }
                    if (w is null && other.FirstOrDefault(t => t.Shape.Rank == 1) is { } v && _state.FindSource(v.Name) is { } vs
                        && v.Shape[0] == tgtOut && vs.Shape.Rank == 1 && vs.Shape[0] != tgtOut)
                    {
                        candidates.Add(other.Key);
                    }
                }
                return candidates.Count == 0 ? null
                    : $"no dependency information for {target.Name}, and {string.Join(", ", candidates)} may carry or read its channels; " +
                      "trace the model (give an input shape) or declare a channel group";
            }

            public List<PlannedGroup> Planned() =>
                _groups.Select(g => new PlannedGroup(g.Group.Key, g.Group.Producers, g.Group.Consumers, g.Origin, DecisionOf(g.Group))).ToList();

            private OutDecision? DecisionOf(ChannelGroup g)
            {
                if (_decisions.TryGetValue(g.Key, out var cached))
                {
                    return cached;
                }
                var counts = new List<(string Layer, long Src, long Tgt)>();
                var norms = new List<NormWeight>();
                var shrinks = new List<(string Layer, OutShrinkRule Rule)>();
                var fresh = new List<(string Layer, NewChannelRule Rule)>();
                foreach (var p in g.Producers)
                {
                    var members = _state._template.Where(t => LayerOf(t.Name) == p).ToList();
                    var w = members.FirstOrDefault(t => MemberOf(t.Name) == "weight" && t.Shape.Rank >= 2);
                    var rules = _state.RulesFor(w?.Name ?? members[0].Name).Merged;
                    fresh.Add((p, rules.NewChannels ?? _state._policy.NewChannels));
                    if (w is not null)
                    {
                        var layout = rules.Layout ?? Layout.DefaultForRank(w.Shape.Rank);
                        shrinks.Add((p, rules.OutShrink ?? _state._policy.OutShrink));
                        if (_state.FindSource(w.Name) is { } src && src.Shape.Rank == w.Shape.Rank && layout.HasChannels)
                        {
                            counts.Add((p, src.Shape[layout.OutAxis], w.Shape[layout.OutAxis]));
                            norms.Add(new NormWeight(src.Name, layout));
                            if (layout.Groups != 1 && layout.Kind == LayerKind.Conv && src.Shape[layout.OutAxis] != w.Shape[layout.OutAxis])
                            {
                                throw new TransferPlanException($"Channel group [{g}]: {w.Name} is a grouped convolution; its channels cannot follow a group decision.");
                            }
                        }
                    }
                    else if (members.FirstOrDefault(t => t.Shape.Rank == 1) is { } v && _state.FindSource(v.Name) is { } vs && vs.Shape.Rank == 1)
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
                            string.Join(", ", shrinks.Select(s => $"{s.Layer} {ShrinkName(s.Rule)}")) + "; all producers of a group share one decision.");
                    }
                    if (fresh.Select(s => s.Rule).Distinct().Count() > 1)
                    {
                        throw new TransferPlanException($"Channel group [{g}] disagrees on its new-channel rule: " +
                            string.Join(", ", fresh.Select(s => $"{s.Layer} {NewName(s.Rule)}")) + ".");
                    }
                    var (_, src, tgt) = counts[0];
                    if (src != tgt)
                    {
                        var shrink = tgt < src && shrinks.Count > 0 ? shrinks[0].Rule : OutShrinkRule.First;
                        decision = new OutDecision(g.Key, shrink, fresh[0].Rule, src, tgt, 1)
                        {
                            Group = g.Key,
                            NormSources = shrink == OutShrinkRule.First ? [] : norms,
                        };
                    }
                }
                _decisions[g.Key] = decision;
                return decision;
            }
        }
    }

    internal static string InName(InChannelRule r) => r switch
    {
        InChannelRule.RepeatRescale => "repeat-rescale",
        InChannelRule.ZeroExtend => "zero-extend",
        _ => r.ToString().ToLowerInvariant(),
    };

    internal static string KernelName(KernelRule r) => r switch
    {
        KernelRule.Fit => "centred zero-pad/crop",
        KernelRule.PIResize => "pi-resize",
        _ => r.ToString().ToLowerInvariant(),
    };

    internal static string ShrinkName(OutShrinkRule r) => r switch
    {
        OutShrinkRule.First => "the first",
        OutShrinkRule.LargestL1 => "the largest by L1 norm",
        _ => "the largest by L2 norm",
    };

    internal static string NewName(NewChannelRule r) => r switch
    {
        NewChannelRule.Template => "the template's init",
        NewChannelRule.Zeros => "zeros",
        NewChannelRule.KaimingNormal => "Kaiming-normal (fan_out, relu)",
        _ => "copies of source channels",
    };
}
