using System.Text.RegularExpressions;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>
/// Makes a <see cref="TransferPlan"/> from tensor descriptions alone (names, dtypes, shapes): no data is read, so a
/// plan for a huge checkpoint is instant and every shape is checked before anything moves.
/// </summary>
public static class TransferPlanner
{
    private static readonly string[] VectorMembers = ["bias", "running_mean", "running_var"];

    /// <summary>Vision-transformer tokens before the position grid: torchvision, timm and Hugging Face names.</summary>
    private static readonly string[] PrefixMembers = ["cls_token", "class_token", "dist_token", "distillation_token", "reg_token", "register_tokens"];

    /// <summary>Absolute position embeddings, (1, P + H·W, D): timm <c>pos_embed</c>, torchvision <c>pos_embedding</c>, Hugging Face <c>position_embeddings</c>.</summary>
    private static readonly string[] PositionMembers = ["pos_embed", "pos_embedding", "position_embeddings"];

    /// <summary>Buffers a model computes for its own window size (Swin): taken from the template, never resampled.</summary>
    private static readonly string[] WindowBuffers = ["relative_position_index", "relative_coords_table"];

    /// <summary>Patch-embedding convolutions (timm, torchvision, Hugging Face ViT and CLIP): their kernel is the patch.</summary>
    private static readonly string[] PatchEmbeddingLayers = ["patch_embed.proj", "conv_proj", "patch_embeddings.projection", "patch_embedding"];

    /// <summary>True when <paramref name="layer"/> names a patch embedding, whose kernel changes are PI-resized by default (as timm).</summary>
    internal static bool IsPatchEmbedding(string layer) =>
        PatchEmbeddingLayers.Any(p => layer == p || layer.EndsWith("." + p, StringComparison.Ordinal));

    /// <summary>True when <paramref name="name"/> is an absolute position embedding (see <see cref="PositionMembers"/>).</summary>
    internal static bool IsPositionEmbedding(string name) => PositionMembers.Contains(TensorName.MemberOf(name));

    /// <summary>Prefix tokens a checkpoint declares through its own token tensors, or null when it has none.</summary>
    private static int? PrefixTokensOf(IEnumerable<TensorInfo> tensors)
    {
        int? count = null;
        foreach (var t in tensors.Where(t => PrefixMembers.Contains(TensorName.MemberOf(t.Name))))
        {
            // (1, R, D) register tokens count R; a class or distillation token (1, 1, D) or (1, D) counts one.
            count = (count ?? 0) + (int)(t.Shape.Rank == 3 ? t.Shape[1] : 1);
        }
        return count;
    }

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
        string sourcePath = "<source>", string templatePath = "<template>", ChannelGroups? groups = null) =>
        Plan(source, template, policy, sourcePath, templatePath, groups, matches: null);

    /// <summary>Like the overload without <paramref name="matches"/>, with the pairs made already (by names and by the graph).</summary>
    internal static TransferPlan Plan(IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template, TransferPolicy policy,
        string sourcePath, string templatePath, ChannelGroups? groups, IReadOnlyDictionary<string, NameMatch>? matches)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(policy);
        var planner = new State(source, template, policy, groups ?? ChannelGroups.None, matches);
        var targets = planner.Run();
        var used = new HashSet<string>(targets.Length, StringComparer.Ordinal);
        foreach (var t in targets)
        {
            if (t.Source is not null)
            {
                used.Add(t.Source.Name);
            }
        }
        var unused = source.Where(s => !used.Contains(s.Name)).ToList();
        return new TransferPlan(sourcePath, templatePath, targets, unused, policy) { Groups = planner.PlannedGroups(), Notes = planner.AllNotes() };
    }

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
        private readonly int? _sourcePrefix;
        private readonly int? _templatePrefix;
        private readonly long? _templatePatch;

        public List<string> Notes { get; } = [];

        /// <summary>Largest-norm decisions that fell back to first-n: noted one by one when alone, else in one line.</summary>
        private readonly List<(string Layer, string Rule, string Why)> _firstNFallbacks = [];

        /// <summary>The plan's notes: <see cref="Notes"/>, then the first-n fallbacks (one line with a count when several).</summary>
        public List<string> AllNotes()
        {
            var notes = new List<string>(Notes);
            if (_firstNFallbacks.Count == 1)
            {
                var (layer, rule, why) = _firstNFallbacks[0];
                notes.Add($"{layer}: {rule} asked, first-n used: {why}");
            }
            else if (_firstNFallbacks.Count > 1)
            {
                var names = string.Join(", ", _firstNFallbacks.Take(3).Select(f => f.Layer)) + (_firstNFallbacks.Count > 3 ? ", …" : "");
                notes.Add($"{_firstNFallbacks[0].Rule} asked, first-n used in {_firstNFallbacks.Count} layers ({names}): nothing says which layers read their channels " +
                    "(each layer's reason names the candidates); declare them with --group 'PRODUCER->CONSUMER' (the library can also trace a live model), or use --out-shrink first");
            }
            return notes;
        }

        /// <summary>Structural guesses noted one by one; more are counted in one note.</summary>
        private const int MaxGuessNotes = 50;

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

        public State(IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template, TransferPolicy policy, ChannelGroups traced,
            IReadOnlyDictionary<string, NameMatch>? matches)
        {
            _template = template;
            _policy = policy;
            _head = NamePatterns.CompileRegex(policy.HeadPattern, HeadPatternWhat);
            _sourceByName.EnsureCapacity(source.Count);
            foreach (var s in source)
            {
                _sourceByName[s.Name] = s;
            }
            _matches = matches ?? NameMatcher.Match(source, template, policy);
            // One note per guess, up to a screenful; past it one line counts the rest (every target's own entry still
            // says how it was matched).
            int guesses = 0;
            foreach (var m in _matches.Values.Where(m => m.Kind == MatchKind.Structural))
            {
                if (++guesses <= MaxGuessNotes)
                {
                    Notes.Add($"structural guess: {m.Target} ← {m.Source} (refuse it with --rule '{m.Target}:structural=false'; in the library, a TensorRule with Structural = false)");
                }
            }
            if (guesses > MaxGuessNotes)
            {
                Notes.Add($"structural guesses: {guesses - MaxGuessNotes} more (each target's match says so)");
            }
            _lastLinear = template.LastOrDefault(t => t.Shape.Rank == 2 && TensorName.Parse(t.Name).IsLayerWeight)?.Name;
            _firstConv = template.FirstOrDefault(t => t.Shape.Rank >= 3 && TensorName.Parse(t.Name).IsLayerWeight)?.Name;
            _groups = new GroupState(this, Merge(policy.Groups, traced));
            _sourcePrefix = PrefixTokensOf(source);
            _templatePrefix = PrefixTokensOf(template);
            // A ViT's patch size is its patch embedding's (square) kernel.
            _templatePatch = template.FirstOrDefault(t => t.Shape.Rank == 4 && TensorName.Parse(t.Name).IsLayerWeight
                && IsPatchEmbedding(TensorName.LayerOf(t.Name)) && t.Shape[2] == t.Shape[3])?.Shape[2];
        }

        /// <summary>
        /// Plans every layer (the template's tensors grouped by name prefix, in order of first appearance) and returns
        /// the plans in template order.
        /// </summary>
        public TargetPlan[] Run()
        {
            var layers = LayerGroups.Of(_template);
            var plans = new TargetPlan[_template.Count];
            for (int l = 0; l < layers.Count; l++)
            {
                var indices = layers.Members(l);
                var tensors = new List<TensorInfo>(indices.Length);
                foreach (var i in indices)
                {
                    tensors.Add(_template[i]);
                }
                var planned = PlanLayer(TensorName.LayerOf(tensors[0].Name), tensors);
                for (int k = 0; k < indices.Length; k++)
                {
                    plans[indices[k]] = planned[k];
                }
            }
            return plans;
        }

        private TensorInfo? FindSource(string targetName) =>
            _matches.TryGetValue(targetName, out var m) ? _sourceByName[m.Source] : null;

        private NameMatch? MatchOf(string targetName) => _matches.TryGetValue(targetName, out var m) ? m : null;

        /// <summary>The rules no tensor-specific rule changes: what every tensor of a policy without rules gets.</summary>
        private static readonly TensorRule NoRule = new("*");

        private (TensorRule Merged, bool Any) RulesFor(string name)
        {
            var merged = NoRule;
            bool any = false;
            foreach (var r in _policy.Rules)
            {
                if (!r.Matches(name))
                {
                    continue;
                }
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
                    Grid = r.Grid ?? merged.Grid,
                    SourceGrid = r.SourceGrid ?? merged.SourceGrid,
                    PrefixTokens = r.PrefixTokens ?? merged.PrefixTokens,
                    Interpolation = r.Interpolation ?? merged.Interpolation,
                };
            }
            return (merged, any);
        }

        /// <summary>The plans of one layer's members, in the members' order (the weight is planned first: the others follow it).</summary>
        private TargetPlan[] PlanLayer(string layer, List<TensorInfo> members)
        {
            // A layer's decision comes from a weight with channel axes; a rank-1 "weight" (BatchNorm, LayerNorm scale)
            // is one of the layer's vectors.
            int w = members.FindIndex(m => TensorName.Parse(m.Name).IsLayerWeight && m.Shape.Rank >= 2);
            var weight = w >= 0 ? members[w] : null;
            var rules = RulesFor(weight?.Name ?? members[0].Name).Merged;
            var result = new TargetPlan[members.Count];
            TargetPlan? weightPlan = null;
            if (weight is not null)
            {
                weightPlan = result[w] = PlanWeight(layer, weight, rules);
            }
            for (int i = 0; i < members.Count; i++)
            {
                if (i != w)
                {
                    result[i] = PlanMember(layer, members[i], weight, weightPlan);
                }
            }
            return result;
        }

        private TargetPlan Base(string layer, TensorInfo target, TensorInfo? source, Layout layout) =>
            new() { Target = target, Source = source, Status = TargetStatus.Kept, Reason = "", Layout = layout, Layer = layer, Match = MatchOf(target.Name) };

        /// <summary>The template's value is kept: nothing of the source is used, and <c>--strict</c> refuses it.</summary>
        private static TargetPlan Refused(TargetPlan plan, TargetCause cause, string reason) => plan with
        {
            Status = TargetStatus.Kept, Source = null, Cause = cause, Reason = reason, Complete = false,
            In = null, Kernel = null, Out = null, Transform = WeightTransform.Identity,
        };

        private TargetPlan PlanWeight(string layer, TensorInfo target, TensorRule rules)
        {
            var source = FindSource(target.Name);
            var layout = rules.Layout ?? Layout.DefaultForRank(target.Shape.Rank);
            var basePlan = Base(layer, target, source, layout);

            if (source is null)
            {
                return basePlan with { Cause = TargetCause.NoSource, Reason = "no source tensor of this name" };
            }
            if (rules.Skip == true)
            {
                return Refused(basePlan, TargetCause.Skipped, "skipped by a rule; the template's init is kept");
            }
            if (rules.Reinit == true && target.Shape.Rank >= 2 && target.DType.IsFloatingPoint())
            {
                return Reinitialised(basePlan, layout.Kind == LayerKind.Linear
                    ? "reinitialised by a rule as PyTorch initialises a Linear layer (uniform ±1/√fan_in); the bias keeps the template's init"
                    : "reinitialised by a rule: Kaiming-normal (fan_out, relu); the bias keeps the template's init");
            }
            if (target.Shape == source.Shape)
            {
                return SameShape(basePlan, source, target);
            }
            if (target.Shape.Rank != source.Shape.Rank)
            {
                return Refused(basePlan, TargetCause.Incompatible, $"rank differs (source {source.Shape}, target {target.Shape}); nothing carried over");
            }
            if (!layout.HasChannels || layout.Kind == LayerKind.Scalar)
            {
                return Refused(basePlan, TargetCause.Incompatible, $"shapes differ (source {source.Shape}, target {target.Shape}) and a {layout} tensor has no channel roles");
            }
            if (!target.DType.IsFloatingPoint() || !Computable(source.DType) || !Computable(target.DType))
            {
                return Refused(basePlan, TargetCause.NotComputable, $"shapes differ and dtype {source.DType}→{target.DType} cannot be computed on");
            }
            layout.Check(target.Shape, target.Name);

            long srcOut = source.Shape[layout.OutAxis], tgtOut = target.Shape[layout.OutAxis];
            bool isHead = layout.Kind == LayerKind.Linear && srcOut != tgtOut
                && (IsHead(target.Name) || target.Name == _lastLinear || rules.Head is not null);
            basePlan = basePlan with { Head = isHead };
            if (isHead && (rules.Head ?? _policy.Head) == HeadRule.Template)
            {
                return Refused(basePlan, TargetCause.NewHead, $"classifier head with another class count ({srcOut}→{tgtOut}); the target's own init is kept") with { NewHead = true };
            }

            var kernelRule = rules.Kernel ?? (IsPatchEmbedding(layer) ? KernelRule.PIResize : _policy.Kernel);
            bool kernelDiffers = layout.KernelAxes.Any(a => source.Shape[a] != target.Shape[a]);
            if (kernelDiffers && kernelRule == KernelRule.Reinit)
            {
                return Reinitialised(basePlan, $"kernel {Kernel(source.Shape, layout)}→{Kernel(target.Shape, layout)} with rule reinit: Kaiming-normal (fan_out, relu); the bias keeps the template's init");
            }

            var reasons = new List<string>();
            var inStep = PlanIn(layer, target, source, layout, rules, reasons);
            var kernelStep = kernelDiffers ? PlanKernel(target, source, layout, kernelRule, reasons) : null;
            if (kernelDiffers && rules.Kernel is null && IsPatchEmbedding(layer))
            {
                reasons[^1] += " (a patch embedding: PI-resized by default, as timm)";
            }
            var decision = PlanOut(layer, target, source, layout, rules, reasons);
            // Zeros on new inputs and around a padded kernel are part of the carried-over function; only new out
            // channels from the template, zeros or random are values the source did not provide.
            bool complete = decision is null || decision.TargetCount <= decision.SourceCount || decision.NewChannels == NewChannelRule.Copies;
            var plan = basePlan with
            {
                Status = TargetStatus.Adapted,
                Cause = TargetCause.Transferred,
                Reason = string.Join("; ", reasons),
                In = inStep,
                Kernel = kernelStep,
                Out = decision,
                Complete = complete,
            };
            return Programmed(plan, () =>
            [
                inStep is null ? WeightTransform.Identity
                    : inStep.Follows is { } followed ? new PlannedChannels(layout, inputs: true, followed, inStep.BlockSize, ChannelFill.Zeros)
                    : RuleSteps.In(inStep.Rule, layout, inStep.SourceCount, inStep.TargetCount),
                kernelStep is null ? WeightTransform.Identity : RuleSteps.Kernel(kernelStep.Rule, layout, kernelStep.TargetSize),
                decision is null ? WeightTransform.Identity : new PlannedChannels(layout, inputs: false, decision, 1, FillFor(target, layout, decision.NewChannels)),
            ]);
        }

        /// <summary>The in decision: follow the group feeding the layer, or the in-channel rule.</summary>
        private InStep? PlanIn(string layer, TensorInfo target, TensorInfo source, Layout layout, TensorRule rules, List<string> reasons)
        {
            long srcIn = source.Shape[layout.InAxis], tgtIn = target.Shape[layout.InAxis];
            if (srcIn == tgtIn)
            {
                return null;
            }
            if (_groups.FeedingDecision(layer) is { Decision: { } followed } feeding)
            {
                long block = feeding.Consumer.BlockSize;
                if (followed.SourceCount * block != srcIn || followed.TargetCount * block != tgtIn)
                {
                    throw new TransferPlanException($"Channel group {followed.Group} disagrees with {target.Name}: the group has {followed.SourceCount}→{followed.TargetCount} channels" +
                        (block == 1 ? "" : $" × block {block}") + $", but the layer reads {srcIn}→{tgtIn} inputs.");
                }
                reasons.Add($"inputs {srcIn}→{tgtIn}: follow the out decision of {followed.Group} ({(tgtIn < srcIn ? "keep " + RuleSteps.Name(followed.Shrink) : "new inputs get zero weights")})"
                    + (block == 1 ? "" : $", in blocks of {block} features per channel"));
                return new InStep(tgtIn < srcIn ? InChannelRule.Truncate : InChannelRule.ZeroExtend, srcIn, tgtIn) { Follows = followed, BlockSize = block };
            }
            var rule = ResolveIn(rules.InChannels ?? _policy.InChannels, layout, srcIn, tgtIn, target.Name, out var why);
            reasons.Add(why);
            return new InStep(rule, srcIn, tgtIn);
        }

        /// <summary>The kernel decision (a rule other than reinit, which is a status).</summary>
        private static KernelStep PlanKernel(TensorInfo target, TensorInfo source, Layout layout, KernelRule rule, List<string> reasons)
        {
            reasons.Add($"kernel {Kernel(source.Shape, layout)}→{Kernel(target.Shape, layout)} by {RuleSteps.Name(rule)}");
            return new KernelStep(rule, layout.KernelAxes.Select(a => target.Shape[a]).ToArray());
        }

        /// <summary>The out decision: the one shared by the layer's group, or the layer's own.</summary>
        private OutDecision? PlanOut(string layer, TensorInfo target, TensorInfo source, Layout layout, TensorRule rules, List<string> reasons)
        {
            long srcOut = source.Shape[layout.OutAxis], tgtOut = target.Shape[layout.OutAxis];
            if (srcOut == tgtOut)
            {
                return null;
            }
            if (_groups.ProducedDecision(layer) is { } shared)
            {
                if (shared.SourceCount != srcOut || shared.TargetCount != tgtOut)
                {
                    throw new TransferPlanException($"Channel group {shared.Group} disagrees with {target.Name}: the group has {shared.SourceCount}→{shared.TargetCount} channels, the layer {srcOut}→{tgtOut}.");
                }
                reasons.Add(tgtOut < srcOut
                    ? $"out channels {srcOut}→{tgtOut}: keep {RuleSteps.Name(shared.Shrink)}, shared by group {shared.Group}"
                    : $"out channels {srcOut}→{tgtOut}: new channels from {RuleSteps.Name(shared.NewChannels)} (group {shared.Group})");
                return shared;
            }
            var shrink = rules.OutShrink ?? _policy.OutShrink;
            if (shrink != OutShrinkRule.First && tgtOut < srcOut && _groups.WhyUnsafe(layer, target, tgtOut) is { } unsafeWhy)
            {
                _firstNFallbacks.Add((layer, $"out-shrink {PolicyWords.Word(shrink)}", unsafeWhy));
                reasons.Add($"largest-norm asked but first-n used: {unsafeWhy}");
                shrink = OutShrinkRule.First;
            }
            var fresh = rules.NewChannels ?? _policy.NewChannels;
            int groups = layout.Kind == LayerKind.Conv ? layout.Groups : 1;
            if (shrink != OutShrinkRule.First && tgtOut < srcOut && groups != 1)
            {
                throw new TransferPlanException($"{target.Name}: largest-norm selection is not supported on grouped convolutions (groups={groups}); use first.");
            }
            var decision = new OutDecision(layer, tgtOut < srcOut ? shrink : OutShrinkRule.First, fresh, srcOut, tgtOut, groups)
            {
                NormSources = tgtOut < srcOut && shrink != OutShrinkRule.First ? [new NormWeight(source.Name, layout)] : [],
            };
            reasons.Add($"out channels {srcOut}→{tgtOut}: {RuleSteps.Describe(decision)}");
            return decision;
        }

        private TargetPlan PlanMember(string layer, TensorInfo target, TensorInfo? weight, TargetPlan? weightPlan)
        {
            var source = FindSource(target.Name);
            var name = TensorName.Parse(target.Name);
            var basePlan = Base(layer, target, source, Layout.DefaultForRank(target.Shape.Rank));
            var rules = RulesFor(target.Name).Merged;
            if (source is null)
            {
                return basePlan with { Cause = TargetCause.NoSource, Reason = "no source tensor of this name" };
            }
            // The layer's weight was not carried over (skipped, reinitialised, a new head, impossible): its vectors keep
            // the template's values too unless they fit as they are.
            if (weightPlan?.Head == true)
            {
                basePlan = basePlan with { Head = true };
            }
            var layerCause = weightPlan?.Cause is { } c && c is not (TargetCause.Transferred or TargetCause.NoSource) ? c : (TargetCause?)null;
            if (layerCause == TargetCause.NewHead)
            {
                basePlan = basePlan with { NewHead = true };
            }
            if (rules.Skip == true || (layerCause is not null && (target.Shape != source.Shape || name.Member == "bias")))
            {
                return Refused(basePlan, layerCause is null ? TargetCause.Skipped : TargetCause.LayerNotTransferred,
                    $"kept from the template: its layer's weight was not transferred ({LayerPhrase(layerCause)})");
            }
            if (target.Shape == source.Shape)
            {
                return SameShape(basePlan, source, target);
            }
            if (PositionMembers.Contains(name.Member) || name.Member == "relative_position_bias_table" || WindowBuffers.Contains(name.Member))
            {
                return PlanPositions(basePlan, name.Member, target, source, rules);
            }
            if (target.Shape.Rank != 1 || source.Shape.Rank != 1 || !VectorMembers.Contains(name.Member) && !(weight is null && name.IsLayerWeight))
            {
                return Refused(basePlan, TargetCause.Incompatible, $"shapes differ (source {source.Shape}, target {target.Shape}) and the tensor has no channel role");
            }
            if (!target.DType.IsFloatingPoint() || !Computable(source.DType) || !Computable(target.DType))
            {
                return Refused(basePlan, TargetCause.NotComputable, $"shapes differ and dtype {source.DType}→{target.DType} cannot be computed on");
            }
            // A vector follows its layer's decision; a layer without a weight of its own (a BatchNorm or LayerNorm whose
            // weight is itself a vector) decides first-n, which matches the default decision of the layer feeding it.
            var decision = weightPlan?.Out;
            var own = decision ?? (weight is null ? _groups.ProducedDecision(layer) : null);
            string why;
            if (own is not null && decision is null && (own.SourceCount != source.Shape[0] || own.TargetCount != target.Shape[0]))
            {
                throw new TransferPlanException($"Channel group {own.Group} disagrees with {target.Name}: the group has {own.SourceCount}→{own.TargetCount} channels, the tensor {source.Shape[0]}→{target.Shape[0]}.");
            }
            if (own is not null && decision is null)
            {
                why = $"follows group {own.Group}: {RuleSteps.Describe(own)}";
            }
            else if (own is not null && own.SourceCount == source.Shape[0] && own.TargetCount == target.Shape[0])
            {
                why = $"follows {layer}.weight: {RuleSteps.Describe(own)}";
            }
            else
            {
                var vrules = weight is null ? rules : RulesFor(weight.Name).Merged;
                var fresh = vrules.NewChannels ?? _policy.NewChannels;
                own = new OutDecision(layer, OutShrinkRule.First, fresh, source.Shape[0], target.Shape[0], 1);
                why = target.Shape[0] < source.Shape[0]
                    ? $"channels {source.Shape[0]}→{target.Shape[0]}: keep the first (consistent with a first-n producer)"
                    : $"channels {source.Shape[0]}→{target.Shape[0]}: new channels from {RuleSteps.Name(fresh)}";
            }
            bool complete = own.TargetCount <= own.SourceCount || own.NewChannels == NewChannelRule.Copies;
            var plan = basePlan with { Status = TargetStatus.Adapted, Cause = TargetCause.Transferred, Layout = Layout.Vector, Out = own, Reason = why, Complete = complete };
            return Programmed(plan, () => [new PlannedChannels(Layout.Vector, inputs: false, own, 1, FillFor(target, Layout.Vector, own.NewChannels))]);
        }

        /// <summary>
        /// Vision-transformer positions at another resolution: an absolute embedding's grid resampled with its prefix
        /// tokens kept, a Swin relative bias table resized for its new window, a window buffer taken from the template.
        /// </summary>
        private TargetPlan PlanPositions(TargetPlan basePlan, string member, TensorInfo target, TensorInfo source, TensorRule rules)
        {
            if (WindowBuffers.Contains(member))
            {
                return basePlan with
                {
                    Status = TargetStatus.Kept, Cause = TargetCause.TemplateBuffer, Complete = true,
                    Reason = $"a buffer for the new window ({source.Shape}→{target.Shape}): taken from the template, never resampled",
                };
            }
            if (!target.DType.IsFloatingPoint() || !Computable(source.DType) || !Computable(target.DType))
            {
                return Refused(basePlan, TargetCause.NotComputable, $"shapes differ and dtype {source.DType}→{target.DType} cannot be computed on");
            }
            if (member == "relative_position_bias_table")
            {
                if (source.Shape.Rank != 2 || target.Shape.Rank != 2 || source.Shape[1] != target.Shape[1]
                    || PositionEmbedding.WindowOfTable(source.Shape[0]) is not { } fromWindow || PositionEmbedding.WindowOfTable(target.Shape[0]) is not { } toWindow)
                {
                    return Refused(basePlan, TargetCause.Incompatible, $"a relative position bias table must be ((2W−1)², heads) on both sides with the same heads; got {source.Shape} and {target.Shape}");
                }
                var table = basePlan with
                {
                    Status = TargetStatus.Adapted, Cause = TargetCause.Transferred, Complete = true,
                    Reason = $"relative positions: window {fromWindow} → {toWindow} (table {2 * fromWindow.Height - 1}² → {2 * toWindow.Height - 1}², bicubic)",
                };
                return Programmed(table, () => [PositionEmbedding.ResampleRelativeBiasTable(fromWindow, toWindow)]);
            }
            if (source.Shape.Rank != 3 || target.Shape.Rank != 3 || source.Shape[0] != 1 || target.Shape[0] != 1 || source.Shape[2] != target.Shape[2])
            {
                return Refused(basePlan, TargetCause.Incompatible, $"a position embedding must be (1, tokens, D) on both sides with the same D; got {source.Shape} and {target.Shape}");
            }
            long n = source.Shape[1], m = target.Shape[1];
            int? prefix = rules.PrefixTokens;
            string prefixWhy = "declared by a rule";
            if (prefix is null && (_sourcePrefix is not null || _templatePrefix is not null))
            {
                if (_sourcePrefix != _templatePrefix)
                {
                    return Refused(basePlan, TargetCause.Incompatible, $"the source has {_sourcePrefix ?? 0} prefix tokens and the target {_templatePrefix ?? 0}; declare prefix=N with a rule if the grids start at the same token");
                }
                prefix = _sourcePrefix;
                prefixWhy = "from the class/distillation/register tokens";
            }
            var to = rules.Grid ?? (_policy.ImageSize is { } image && _templatePatch is { } patch ? TryImageGrid(image, patch) : null);
            if (prefix is null)
            {
                // No token tensors: the smallest count that leaves square grids on both sides (or the declared target grid).
                prefix = Enumerable.Range(0, 9).Cast<int?>().FirstOrDefault(p =>
                    (rules.SourceGrid?.Count == n - p!.Value || PatchGrid.Square(n - p!.Value) is not null)
                    && (to?.Count == m - p.Value || (to is null && PatchGrid.Square(m - p.Value) is not null)));
                prefixWhy = "inferred from square grids";
            }
            if (prefix is not { } p)
            {
                return Refused(basePlan, TargetCause.Incompatible, $"cannot tell the prefix tokens from the grid in {source.Shape}→{target.Shape}; declare prefix=N (and grid=HxW) with a rule");
            }
            var from = rules.SourceGrid ?? PatchGrid.Square(n - p);
            to ??= PatchGrid.Square(m - p);
            if (from is not { } f || f.Count != n - p)
            {
                return Refused(basePlan, TargetCause.Incompatible, $"the source's {n - p} grid tokens are not a square grid{(rules.SourceGrid is { } sg ? $" nor {sg}" : "")}; declare source-grid=HxW with a rule");
            }
            if (to is not { } t || t.Count != m - p)
            {
                return Refused(basePlan, TargetCause.Incompatible, GridMismatch(m - p, to, rules));
            }
            var mode = rules.Interpolation ?? PositionInterpolation.Bicubic;
            // Each checkpoint family's own convention: torchvision's ViTs (encoder.pos_embedding) are resampled as its
            // interpolate_embeddings does (corners aligned, no antialiasing), everything else as timm's
            // resample_abs_pos_embed (antialiased). An interpolation rule picks the mode within the convention.
            bool torchvision = member == "pos_embedding" && mode != PositionInterpolation.Nearest;
            string how = mode == PositionInterpolation.Nearest ? "nearest"
                : torchvision ? $"{PolicyWords.Word(mode)}, corners aligned, not antialiased, as torchvision's interpolate_embeddings"
                : $"{PolicyWords.Word(mode)}, antialiased, as timm's resample_abs_pos_embed";
            var plan = basePlan with
            {
                Status = TargetStatus.Adapted, Cause = TargetCause.Transferred, Complete = true,
                Reason = $"pos: {f} → {t}, {p} prefix token{(p == 1 ? "" : "s")} kept ({prefixWhy}; {how})",
            };
            return Programmed(plan, () => [torchvision
                ? PositionEmbedding.Resample(f, t, p, mode, antialias: false, alignCorners: true)
                : PositionEmbedding.Resample(f, t, p, mode)]);
        }

        /// <summary>Why the target's grid tokens do not make the grid asked for, and what to give instead.</summary>
        private string GridMismatch(long tokens, PatchGrid? asked, TensorRule rules)
        {
            var square = PatchGrid.Square(tokens);
            string holds = $"the target's position embedding holds {tokens} grid tokens" + (square is { } sq ? $" ({sq})" : "");
            if (rules.Grid is { } g)
            {
                return $"the declared grid {g} has {g.Count} tokens, but {holds}; declare the grid it holds with grid=HxW";
            }
            if (_policy.ImageSize is { } image && _templatePatch is { } patch)
            {
                string gives = asked is { } a ? $"gives a {a} grid ({a.Count} tokens)" : "is not a whole number of patches";
                string fix = square is { } s2 ? $"give the template's image size (--image-size {s2.Height * patch}x{s2.Width * patch})" : "declare grid=HxW with a rule";
                return $"--image-size {image.Height}x{image.Width} with {patch}-pixel patches {gives}, but {holds}; {fix}";
            }
            return $"the target's {tokens} grid tokens are not a square grid; declare grid=HxW with a rule or give the image size (--image-size)";
        }

        private static PatchGrid? TryImageGrid(PatchGrid image, long patch)
        {
            try
            {
                return PatchGrid.FromImage(image.Height, image.Width, patch);
            }
            catch (ArgumentException)
            {
                return null;
            }
        }

        private static string LayerPhrase(TargetCause? cause) => cause switch
        {
            null or TargetCause.Skipped => "skipped by a rule",
            TargetCause.Reinitialized => "weight reinitialised",
            TargetCause.NewHead => "classifier head kept from the template",
            _ => "weight not transferred",
        };

        private TargetPlan SameShape(TargetPlan basePlan, TensorInfo source, TensorInfo target)
        {
            if (source.DType == target.DType)
            {
                // Bytes move as they are: any dtype, TorchSharp or not.
                return basePlan with { Status = TargetStatus.Copied, Cause = TargetCause.Transferred, Reason = "same shape and dtype", Complete = true };
            }
            if (!Computable(source.DType) || !Computable(target.DType))
            {
                var which = Computable(source.DType) ? target.DType : source.DType;
                return Refused(basePlan, TargetCause.NotComputable, $"same shape; dtype {source.DType}→{target.DType} cannot be cast: TorchSharp cannot hold {which}");
            }
            return basePlan with { Status = TargetStatus.Cast, Cause = TargetCause.Transferred, Reason = $"same shape; dtype {source.DType}→{target.DType}", Complete = true };
        }

        private TargetPlan Reinitialised(TargetPlan basePlan, string reason)
        {
            var target = basePlan.Target;
            if (!Computable(target.DType))
            {
                return Refused(basePlan, TargetCause.NotComputable, $"reinitialising needs a dtype TorchSharp can hold; {target.DType} is not one");
            }
            var plan = basePlan with { Source = null, Status = TargetStatus.Reinitialized, Cause = TargetCause.Reinitialized, Reason = reason };
            // The layer kind's own init: a Linear layer as PyTorch builds one, a convolution Kaiming-normal (fan_out, relu) as torchvision's CNNs.
            return Programmed(plan, () => [basePlan.Layout.Kind == LayerKind.Linear
                ? Reinit.LinearDefault(target.Shape, SeedFor(target.Name))
                : Reinit.KaimingNormal(target.Shape, SeedFor(target.Name))]);
        }

        /// <summary>
        /// Gives a plan its transform chain, checked: the chain must take the source's shape (nothing, for a
        /// reinitialisation) to the target's. A chain that cannot be built or does not fit is a planned refusal, never a
        /// failure while writing.
        /// </summary>
        private static TargetPlan Programmed(TargetPlan plan, Func<IEnumerable<WeightTransform>> steps)
        {
            var input = plan.Source?.Shape ?? new Shape(0);
            try
            {
                var chain = Chain.Of(steps());
                var output = chain.OutputShape(input);
                return output == plan.Target.Shape
                    ? plan with { Transform = chain }
                    : Refused(plan, TargetCause.Incompatible, $"the planned steps ({chain.Op}) give {output}, but the target is {plan.Target.Shape}");
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException)
            {
                return Refused(plan, TargetCause.Incompatible, $"no planned step takes {input} to {plan.Target.Shape}: {e.Message}");
            }
        }

        private static bool Computable(DType dtype) => TensorBridge.ToScalarType(dtype) is not null;

        /// <summary>How the new out channels of <paramref name="target"/> are filled; null for the template's init (read when the transfer runs).</summary>
        private ChannelFill? FillFor(TensorInfo target, Layout layout, NewChannelRule rule)
        {
            var member = TensorName.MemberOf(target.Name);
            bool vector = layout.Kind == LayerKind.Vector;
            return rule switch
            {
                NewChannelRule.Template => null,
                NewChannelRule.Copies => ChannelFill.Zeros, // copies leave no new channel; the fill is never used
                NewChannelRule.Zeros => vector && member == "running_var" ? ChannelFill.Constant(1) : ChannelFill.Zeros,
                // Kaiming for weights; vectors start as a fresh layer would: BatchNorm scale and variance 1, the rest 0.
                _ => !vector ? ChannelFill.KaimingNormal(SeedFor(target.Name))
                    : member is "running_var" or "weight" ? ChannelFill.Constant(1) : ChannelFill.Zeros,
            };
        }

        /// <summary>FNV-1a of the name mixed with the policy seed: reproducible, and different per tensor.</summary>
        private long SeedFor(string name)
        {
            ulong h = 14695981039346656037UL;
            foreach (var ch in name)
            {
                h = (h ^ ch) * 1099511628211UL;
            }
            return (long)((h ^ (ulong)_policy.Seed) & 0x7FFF_FFFF_FFFF_FFFFUL);
        }

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
                throw new TransferPlanException($"{name}: in-channel rule {RuleSteps.Name(rule)} cannot take {src} inputs to {tgt} " +
                    "(sum, mean and truncate shrink; repeat-rescale and zero-extend grow).");
            }
            why = $"inputs {src}→{tgt}: {RuleSteps.Name(rule)} (by rule)";
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
                var layers = new HashSet<string>(state._template.Select(t => TensorName.LayerOf(t.Name)), StringComparer.Ordinal);
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
                foreach (var other in _state._template.GroupBy(t => TensorName.LayerOf(t.Name), StringComparer.Ordinal).Where(l => l.Key != layer))
                {
                    var w = other.FirstOrDefault(t => TensorName.Parse(t.Name).IsLayerWeight && t.Shape.Rank >= 2);
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
                      "declare a channel group (--group), or trace the model (library)";
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
                    var members = _state._template.Where(t => TensorName.LayerOf(t.Name) == p).ToList();
                    var w = members.FirstOrDefault(t => TensorName.Parse(t.Name).IsLayerWeight && t.Shape.Rank >= 2);
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
                            string.Join(", ", shrinks.Select(s => $"{s.Layer} {RuleSteps.Name(s.Rule)}")) + "; all producers of a group share one decision.");
                    }
                    if (fresh.Select(s => s.Rule).Distinct().Count() > 1)
                    {
                        throw new TransferPlanException($"Channel group [{g}] disagrees on its new-channel rule: " +
                            string.Join(", ", fresh.Select(s => $"{s.Layer} {RuleSteps.Name(s.Rule)}")) + ".");
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
}
