using System.Globalization;
using Graft.Checkpoints;
using Graft.Checkpoints.Transformers;
using Graft.Transfer;
using Graft.Transforms;

namespace Graft.Transformers;

/// <summary>
/// Plans a transfer between two Llama-family decoders by role, from their <c>config.json</c>: every target tensor gets
/// its source tensor (possibly of another layer or the dense MLP of an expert) and a chain of typed steps that keeps the
/// head structure consistent across q/k/v/o, the MLP and the norms. Width grows by HyperCloning (copies divided by their
/// count), K/V heads by repetition (exact) or group means (not), depth by LLaMA-Pro identity blocks spread evenly after
/// the existing blocks or placed by a <see cref="LayerMap"/>, a dense MLP into Mixtral experts by copies, experts into
/// c times as many by copies with their router rows (<see cref="ExpertAxis"/>), a mixture into a dense MLP by keeping
/// expert 0 (not exact), the vocabulary by the mean of the old rows; Phi-3's fused projections are split and stacked part
/// by part. Names and shapes only: nothing is read.
/// </summary>
public static class TransformerPlanner
{
    /// <summary>
    /// The plan by role when both checkpoints have a Llama-family <c>config.json</c> beside them, else null (the caller
    /// plans by names). A fused target built from unfused source tensors reads them stacked, under a source name of the
    /// form <c>…q_proj.weight+k_proj.weight+v_proj.weight</c> that <see cref="Graft.Transfer.WeightTransfer"/> provides.
    /// </summary>
    /// <exception cref="CheckpointFormatException">A <c>config.json</c> is malformed or names a family not understood.</exception>
    /// <exception cref="TransferPlanException">The change is one this planner does not make (head size, a non-whole
    /// growth factor, experts by a factor that is not whole), or a tensor's shape disagrees with its config.</exception>
    public static TransferPlan? TryPlan(ICheckpointReader source, ICheckpointReader template, TransferPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(policy);
        if (!File.Exists(source.Path) || !File.Exists(template.Path))
        {
            return null;
        }
        var s = TransformerConfig.FindBeside(source.Path);
        var t = TransformerConfig.FindBeside(template.Path);
        return s is null || t is null ? null : Plan(source.Tensors, template.Tensors, s, t, policy, source.Path, template.Path);
    }

    /// <summary>
    /// <see cref="TryPlan"/> and the source its plan reads: the checkpoint, plus (when a fused target is built from
    /// unfused q/k/v or gate/up) those tensors stacked as one input of the plan's <see cref="ConcatRows"/> step.
    /// </summary>
    internal static (TransferPlan Plan, ICheckpointReader Source)? TryPlanWithSource(ICheckpointReader source, ICheckpointReader template, TransferPolicy policy)
    {
        if (TryPlan(source, template, policy) is not { } plan)
        {
            return null;
        }
        var joined = new JoinedSource(source);
        bool any = false;
        foreach (var t in plan.Targets)
        {
            if (t.Source is { } src && !source.TryGetTensor(src.Name, out _) && JoinedSource.PartsNamed(src.Name, source) is { } parts)
            {
                _ = joined.Join(parts) ?? throw new InvalidOperationException($"'{src.Name}' was planned as a stack its parts cannot make.");
                any = true;
            }
        }
        return (plan, any ? joined : source);
    }

    /// <summary>Plans <paramref name="source"/> (architecture <paramref name="s"/>) into <paramref name="template"/> (<paramref name="t"/>).</summary>
    /// <exception cref="TransferPlanException">As <see cref="TryPlan"/>.</exception>
    public static TransferPlan Plan(IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template, TransformerConfig s, TransformerConfig t,
        TransferPolicy policy, string sourcePath = "<source>", string templatePath = "<template>")
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(t);
        ArgumentNullException.ThrowIfNull(policy);
        return new State(source, s, t, policy, sourcePath).Run(template, templatePath);
    }

    private sealed class State
    {
        private readonly Dictionary<string, TensorInfo> _source = new(StringComparer.Ordinal);
        private readonly TransformerConfig _s;
        private readonly TransformerConfig _t;
        private readonly TransferPolicy _policy;
        private readonly string _sourcePath;
        private readonly AxisPlan _hidden;
        private readonly AxisPlan _intermediate;
        private readonly AxisPlan _query;
        private readonly AxisPlan _kv;
        private readonly AxisPlan _vocab;
        private readonly AxisPlan? _experts;
        private readonly (int Source, bool Identity)[] _layers;
        private readonly double _noise;
        private readonly Dictionary<string, TensorInfo[]> _joins = new(StringComparer.Ordinal);
        private readonly List<string> _problems = [];
        private readonly List<string> _notes = [];

        public State(IReadOnlyList<TensorInfo> source, TransformerConfig s, TransformerConfig t, TransferPolicy policy, string sourcePath)
        {
            foreach (var x in source)
            {
                _source[x.Name] = x;
            }
            (_s, _t, _policy, _sourcePath) = (s, t, policy, sourcePath);
            if (s.HeadDim != t.HeadDim)
            {
                throw new TransferPlanException($"head_dim {s.HeadDim}→{t.HeadDim} ({s.Path} → {t.Path}): heads change in number at a fixed head size " +
                    "(rotary embeddings and the 1/√d scale belong to the head size); another head size is not supported.");
            }
            _experts = s.IsMixtureOfExperts && t.IsMixtureOfExperts ? ExpertAxis.Of(s, t) : null;
            _hidden = AxisPlan.Resize("hidden", s.HiddenSize, t.HiddenSize, "channels");
            _intermediate = AxisPlan.Resize("intermediate", s.IntermediateSize, t.IntermediateSize, "channels");
            _query = AxisPlan.Resize("query heads", s.Heads, t.Heads, "heads");
            _kv = AxisPlan.KvHeads(_query, s.KvHeads, s.Heads, t.KvHeads, t.Heads);
            _vocab = AxisPlan.Vocabulary(s.VocabSize, t.VocabSize);
            var map = policy.Transformer?.Layers;
            _layers = map is null ? Layers(s.Layers, t.Layers) : FromMap(map, s, t);
            _noise = policy.Transformer?.CloneNoise ?? 0;
            if (!double.IsFinite(_noise) || _noise < 0)
            {
                throw new TransferPlanException($"clone noise {_noise}: the noise level must be a finite number ≥ 0.");
            }
            foreach (var a in new[] { _hidden, _intermediate, _query, _kv, _vocab }.Where(a => !a.IsIdentity))
            {
                _notes.Add(a.What);
                if (a.Problem is not null)
                {
                    _problems.Add(a.Problem);
                }
            }
            if (map is not null)
            {
                _notes.Add($"layers {s.Layers}→{t.Layers} by the layer map '{map.Text}': target {LayerMap.Describe(_layers)}" +
                    (_layers.Any(l => l.Identity) ? " (identity blocks: copies with o_proj and down_proj zeroed, LLaMA-Pro)" : ""));
                _problems.AddRange(map.FunctionProblems(s.Layers));
            }
            else if (t.Layers > s.Layers)
            {
                var added = _layers.Select((l, i) => (l, i)).Where(x => x.l.Identity).Select(x => $"{x.i} (a copy of {x.l.Source})");
                _notes.Add($"layers {s.Layers}→{t.Layers}: identity blocks (LLaMA-Pro: copies with o_proj and down_proj zeroed) spread evenly after the existing blocks, at {string.Join(", ", added)}");
            }
            else if (t.Layers < s.Layers)
            {
                _notes.Add($"layers {s.Layers}→{t.Layers}: the first {t.Layers} kept");
                _problems.Add($"layers {s.Layers}→{t.Layers}: the last {s.Layers - t.Layers} dropped: the function changes");
            }
            if (_experts is { } experts && (!experts.IsIdentity || experts.Problem is not null))
            {
                _notes.Add(experts.What);
                if (experts.Problem is not null)
                {
                    _problems.Add(experts.Problem);
                }
            }
            if (s.IsMixtureOfExperts && !t.IsMixtureOfExperts)
            {
                _notes.Add($"{s.Experts} experts → dense MLP: gate_proj, up_proj, down_proj are expert {DenseExpert}'s w1, w3, w2 (a whole MLP the model computes; averaging experts' weights would mix unaligned units, and the most-routed expert is not knowable without data)");
                _problems.Add($"{s.Experts} experts → dense MLP: only expert {DenseExpert}'s MLP is kept, at full weight; the router and the other experts are dropped, the function changes");
            }
            if (_noise > 0)
            {
                var widened = new[] { _hidden, _intermediate, _query }.Where(a => a.Op == "tile" && a.To > a.From).Select(a => a.Name).ToList();
                _notes.Add(widened.Count == 0
                    ? string.Create(CultureInfo.InvariantCulture, $"clone noise {_noise:g4}: no axis is widened by copies, so no noise is added")
                    : string.Create(CultureInfo.InvariantCulture, $"clone noise {_noise:g4} × each weight's std, seed {policy.Seed}: every linear layer reading a widened axis ({string.Join(", ", widened)}) gets +N on one copy of each input and −N on its twin (HyperCloning's symmetric noise): the function is kept to rounding, the copies are no longer exact"));
            }
            if (t.IsMixtureOfExperts && !s.IsMixtureOfExperts)
            {
                _notes.Add($"dense → {t.Experts} experts top-{t.ExpertsPerToken} (sparse upcycling, Komatsuzaki et al. 2022): every expert a copy of the dense MLP; " +
                    "the router keeps the template's init: with top-k weights renormalised, any router gives the dense output");
            }
            if (t.TieWordEmbeddings && !_hidden.IsIdentity)
            {
                _problems.Add($"tied embeddings with hidden {s.HiddenSize}→{t.HiddenSize}: the head is the embedding table, whose copies are not divided, so logits scale by {t.HiddenSize / s.HiddenSize}; set tie_word_embeddings false in the target's config.json");
            }
            if (s.TieWordEmbeddings != t.TieWordEmbeddings)
            {
                _notes.Add(t.TieWordEmbeddings ? "the target ties its head to the embeddings; the source's lm_head is not used" : "the source's tied head becomes lm_head, a copy of the embeddings");
            }
            if (s.RmsNormEps != t.RmsNormEps)
            {
                _problems.Add(string.Create(CultureInfo.InvariantCulture, $"rms_norm_eps {s.RmsNormEps:g6}→{t.RmsNormEps:g6}: every RMSNorm changes"));
            }
            if (s.RopeTheta != t.RopeTheta)
            {
                _problems.Add(string.Create(CultureInfo.InvariantCulture, $"rope_theta {s.RopeTheta:g6}→{t.RopeTheta:g6}: every rotary position changes"));
            }
        }

        /// <summary>
        /// Target layer → source layer. More layers: the source's in order, with identity blocks spread evenly after
        /// them (new block k follows source layer ⌊(k+1)·S/N⌋ − 1 and copies it, as LLaMA-Pro's groups); fewer: the first.
        /// </summary>
        private static (int, bool)[] Layers(int from, int to)
        {
            if (to <= from)
            {
                return Enumerable.Range(0, to).Select(i => (i, false)).ToArray();
            }
            int added = to - from;
            var result = new List<(int, bool)>(to);
            int next = 0;
            for (int i = 0; i < from; i++)
            {
                result.Add((i, false));
                while (next < added && (long)(next + 1) * from / added - 1 == i)
                {
                    result.Add((i, true));
                    next++;
                }
            }
            return result.ToArray();
        }

        /// <summary>Target layer → source layer by a <see cref="LayerMap"/>, checked against both configs (exit 2 naming the token).</summary>
        private static (int, bool)[] FromMap(LayerMap map, TransformerConfig s, TransformerConfig t)
        {
            if (map.Blocks.Count != t.Layers)
            {
                throw new TransferPlanException($"layer map '{map.Text}' gives {map.Blocks.Count} blocks, but {t.Path} has num_hidden_layers {t.Layers}.");
            }
            var bad = map.Blocks.FirstOrDefault(b => b.Source >= s.Layers);
            if (bad.Token is not null)
            {
                throw new TransferPlanException($"layer map '{map.Text}': token '{bad.Token}' names source block {bad.Source}, but {s.Path} has {s.Layers} blocks (0–{s.Layers - 1}).");
            }
            return map.Blocks.Select(b => (b.Source, b.Identity)).ToArray();
        }

        /// <summary>The parts of a fused role in row order, or null for a role that is not fused.</summary>
        private static (TransformerRole Role, string Name)[]? FusedParts(TransformerRole role) => role switch
        {
            TransformerRole.FusedQkv => [(TransformerRole.Query, "q"), (TransformerRole.Key, "k"), (TransformerRole.Value, "v")],
            TransformerRole.FusedGateUp => [(TransformerRole.Gate, "gate"), (TransformerRole.Up, "up")],
            _ => null,
        };

        /// <summary>The fused role a part belongs to, its position among the parts, or null.</summary>
        private static (TransformerRole Fused, int Index)? FusedOf(TransformerRole role) => role switch
        {
            TransformerRole.Query => (TransformerRole.FusedQkv, 0),
            TransformerRole.Key => (TransformerRole.FusedQkv, 1),
            TransformerRole.Value => (TransformerRole.FusedQkv, 2),
            TransformerRole.Gate => (TransformerRole.FusedGateUp, 0),
            TransformerRole.Up => (TransformerRole.FusedGateUp, 1),
            _ => null,
        };

        /// <summary>Rows of each part of a fused role in the source.</summary>
        private long[] SourceRows(TransformerRole fused) => fused == TransformerRole.FusedQkv
            ? [(long)_s.Heads * _s.HeadDim, (long)_s.KvHeads * _s.HeadDim, (long)_s.KvHeads * _s.HeadDim]
            : [_s.IntermediateSize, _s.IntermediateSize];

        public TransferPlan Run(IReadOnlyList<TensorInfo> template, string templatePath)
        {
            var targets = new TargetPlan[template.Count];
            var used = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < template.Count; i++)
            {
                targets[i] = PlanOne(template[i]);
                if (targets[i].Source is { } src)
                {
                    used.Add(src.Name);
                    foreach (var part in _joins.GetValueOrDefault(src.Name) ?? [])
                    {
                        used.Add(part.Name);
                    }
                }
            }
            var unused = _source.Values.Where(x => !used.Contains(x.Name)).ToList();
            foreach (var u in unused.Where(u => !DroppedExpert(u)))
            {
                _problems.Add($"{u.Name}: source tensor not used");
            }
            foreach (var k in targets.Where(k => k.Status == TargetStatus.Kept && k.Cause is not (TargetCause.TemplateBuffer or TargetCause.Transferred) && !IsRouter(k)))
            {
                _problems.Add($"{k.Target.Name}: not carried over ({k.Reason})");
            }
            var notes = new List<string> { $"planned by role from config.json: {_s.Describe()} → {_t.Describe()}" };
            notes.AddRange(_notes);
            return new TransferPlan(_sourcePath, templatePath, targets, unused, _policy)
            {
                Notes = notes,
                Transformer = new TransformerPlan(_s, _t, _problems),
            };
        }

        /// <summary>
        /// The expert to become the dense MLP when a mixture becomes dense: expert 0. Averaging the experts' weights would
        /// mix intermediate units that are not aligned (each expert orders its own), and which expert is routed most
        /// depends on data Graft does not see; one whole expert is an MLP the model really computes.
        /// </summary>
        private const int DenseExpert = 0;

        /// <summary>A router or expert the plan drops on purpose (fewer experts, or a dense target): said once in the experts' line.</summary>
        private bool DroppedExpert(TensorInfo u) => _s.IsMixtureOfExperts && (_experts is null || _experts.To < _experts.From)
            && TransformerTensor.Parse(u.Name) is { Role: TransformerRole.Router or TransformerRole.ExpertGate or TransformerRole.ExpertUp or TransformerRole.ExpertDown };

        private bool IsRouter(TargetPlan k) => TransformerTensor.Parse(k.Target.Name) is { Role: TransformerRole.Router } && _t.IsMixtureOfExperts && !_s.IsMixtureOfExperts;

        private static TargetPlan Kept(TensorInfo target, TargetCause cause, string reason) => new()
        {
            Target = target, Status = TargetStatus.Kept, Reason = reason, Layout = Layout.DefaultForRank(target.Shape.Rank),
            Layer = TensorName.LayerOf(target.Name), Cause = cause, Complete = cause == TargetCause.TemplateBuffer,
        };

        /// <summary>The rule keys a plan by role applies; others (about convolutions and patch grids) are refused, not ignored.</summary>
        private static readonly string[] RoleRuleKeys = ["skip", "reinit", "new-channels"];

        private TargetPlan PlanOne(TensorInfo target)
        {
            var rule = _policy.RulesFor(target.Name);
            if (rule.Skip == true)
            {
                return Kept(target, TargetCause.Skipped, "skipped by a rule; the template's init is kept");
            }
            var parsed = TransformerTensor.Parse(target.Name);
            if (rule.Reinit == true)
            {
                return Reinitialised(target, parsed);
            }
            var foreign = rule.SetKeys().Except(RoleRuleKeys).ToList();
            if (foreign.Count > 0 || rule.NewChannels is not null && parsed is not { Role: TransformerRole.Embedding or TransformerRole.LmHead })
            {
                var keys = foreign.Count > 0 ? foreign : ["new-channels"];
                throw new TransferPlanException($"{target.Name}: rule key{(keys.Count > 1 ? "s" : "")} {string.Join(", ", keys)} do{(keys.Count > 1 ? "" : "es")} not apply to a tensor planned by role from config.json: " +
                    "there, skip and reinit apply to any tensor and new-channels to the embedding and lm_head (new token rows).");
            }
            if (parsed is not { } role)
            {
                return _source.TryGetValue(target.Name, out var same) && same.Shape.SequenceEqual(target.Shape)
                    ? Carried(target, same, WeightTransform.Identity, "not a Llama-family tensor; same name and shape")
                    : Kept(target, TargetCause.NoSource, "not a Llama-family tensor, and no source of this name and shape");
            }
            if (role.Role == TransformerRole.RotaryFrequencies)
            {
                return Kept(target, TargetCause.TemplateBuffer, "rotary frequencies: computed by the model from its config; the template's are right");
            }
            var (layer, identity) = role.Layer >= 0
                ? role.Layer < _layers.Length ? _layers[role.Layer] : throw Mismatch(target, $"layer {role.Layer}, but the config has {_t.Layers} layers")
                : (-1, false);
            if (FusedParts(role.Role) is { } fusedParts)
            {
                return PlanFused(target, role, fusedParts, layer, identity);
            }
            TransformerTensor from;
            if (role.Role is TransformerRole.ExpertGate or TransformerRole.ExpertUp or TransformerRole.ExpertDown && !_s.IsMixtureOfExperts)
            {
                var dense = role.Role switch { TransformerRole.ExpertGate => TransformerRole.Gate, TransformerRole.ExpertUp => TransformerRole.Up, _ => TransformerRole.Down };
                from = new TransformerTensor(dense, layer, -1, false);
            }
            else if (role.Role is TransformerRole.Gate or TransformerRole.Up or TransformerRole.Down && _s.IsMixtureOfExperts)
            {
                var expert = role.Role switch { TransformerRole.Gate => TransformerRole.ExpertGate, TransformerRole.Up => TransformerRole.ExpertUp, _ => TransformerRole.ExpertDown };
                from = new TransformerTensor(expert, layer, DenseExpert, false);
            }
            else if (role.Role is TransformerRole.ExpertGate or TransformerRole.ExpertUp or TransformerRole.ExpertDown && _experts is not null)
            {
                from = role.At(layer, _experts.Map[role.Expert][0]);
            }
            else if (role.Role == TransformerRole.Router && !_s.IsMixtureOfExperts)
            {
                return Kept(target, TargetCause.NoSource, "router of experts upcycled from a dense MLP: the template's init (every expert is the same MLP, so with renormalised top-k weights any router gives the dense output)");
            }
            else if (role.Role == TransformerRole.LmHead && _s.TieWordEmbeddings)
            {
                from = new TransformerTensor(TransformerRole.Embedding, -1, -1, false);
            }
            else
            {
                from = role.At(layer, role.Expert);
            }
            WeightTransform split = WeightTransform.Identity;
            if (!_source.TryGetValue(from.Name, out var src))
            {
                // Phi-3 style: the source has the part inside its fused projection.
                if (FusedOf(from.Role) is not { } f || !_source.TryGetValue(new TransformerTensor(f.Fused, from.Layer, -1, from.Bias).Name, out src))
                {
                    return Kept(target, TargetCause.NoSource, $"no source tensor {from.Name}");
                }
                var rows = SourceRows(f.Fused);
                split = new SplitRows(FusedParts(f.Fused)![f.Index].Name, rows.Take(f.Index).Sum(), rows[f.Index], rows.Sum());
            }
            bool zeroed = identity && role.Role is TransformerRole.Output or TransformerRole.Down or TransformerRole.ExpertDown;
            var chain = split.Then(rule.NewChannels is { } fill && role.Role is TransformerRole.Embedding or TransformerRole.LmHead && _t.VocabSize > _s.VocabSize
                ? NewTokenRows(target, role, fill)
                : Steps(role, target.Name, noise: !zeroed));
            if (zeroed)
            {
                chain = chain.Then(ZeroWeights.Instance);
            }
            var where = role.Layer < 0 ? "" : identity ? $" (identity block: a copy of layer {layer})" : layer != role.Layer ? $" (from layer {layer})" : "";
            var word = from.Expert >= 0 && role.Expert < 0 ? $"{Word(role.Role, false)} (expert {from.Expert}'s {Word(from.Role, false)})"
                : from.Expert >= 0 && from.Expert != role.Expert ? $"{Word(role.Role, false)} (a copy of expert {from.Expert})"
                : Word(role.Role, upcycled: from.Expert < 0 && role.Expert >= 0);
            return Carried(target, src, chain, word + where);
        }

        /// <summary>
        /// A rule's <c>new-channels</c> for the rows of tokens the source does not have (instead of the mean of the old
        /// rows): the template's init, zeros, or cyclic copies of the old rows. Old tokens keep their rows, so their
        /// logits do not change whichever is chosen.
        /// </summary>
        /// <exception cref="TransferPlanException">Kaiming-normal, which has no meaning for token rows.</exception>
        private WeightTransform NewTokenRows(TensorInfo target, TransformerTensor role, NewChannelRule fill)
        {
            if (fill == NewChannelRule.KaimingNormal)
            {
                throw new TransferPlanException($"{target.Name}: new-channels={PolicyWords.Word(fill)} is a convolution's init; new token rows take " +
                    $"{PolicyWords.Word(NewChannelRule.Template)}, {PolicyWords.Word(NewChannelRule.Zeros)} or {PolicyWords.Word(NewChannelRule.Copies)} (without a rule: the mean of the old rows).");
            }
            var decision = new OutDecision(TensorName.LayerOf(target.Name), OutShrinkRule.First, fill, _s.VocabSize, _t.VocabSize, 1);
            _notes.Add($"{target.Name}: the {_t.VocabSize - _s.VocabSize} new token rows by a rule: {(fill == NewChannelRule.Copies ? "copies of the old rows" : fill == NewChannelRule.Zeros ? "zeros" : "the template's init")}");
            // Columns first (hidden size), so the rows are chosen on a tensor of the target's width, where the template's
            // own rows (new-channels=template) fit.
            var columns = role.Role == TransformerRole.Embedding ? _hidden.Out(1, 1) : _hidden.In(1, 1);
            return columns.Then(new PlannedChannels(Layout.DefaultForRank(2), inputs: false, decision, 1, fill == NewChannelRule.Template ? null : ChannelFill.Zeros));
        }

        /// <summary>
        /// A tensor a rule reinitialises: a matrix as PyTorch's <c>nn.Linear</c> (or an embedding) starts, an RMSNorm scale
        /// at one, a bias at zero. The function changes, which <c>--preserve-function</c> refuses.
        /// </summary>
        private TargetPlan Reinitialised(TensorInfo target, TransformerTensor? role)
        {
            if (!target.DType.IsFloatingPoint())
            {
                return Kept(target, TargetCause.NotComputable, $"reinitialising needs a floating-point dtype; {target.DType} is not one");
            }
            var init = target.Shape.Rank >= 2 ? Reinit.LinearDefault(target.Shape, _policy.SeedFor(target.Name))
                : Reinit.Constant(target.Shape, role is { Bias: false } ? 1 : 0);
            _problems.Add($"{target.Name}: reinitialised by a rule: the function changes");
            return new TargetPlan
            {
                Target = target, Status = TargetStatus.Reinitialized, Cause = TargetCause.Reinitialized, Layout = Layout.DefaultForRank(target.Shape.Rank),
                Layer = TensorName.LayerOf(target.Name), Transform = init, ComputeDType = DType.F32, Complete = false,
                Reason = $"reinitialised by a rule: {init.Describe()}",
            };
        }

        /// <summary>
        /// The steps of a role: its out axis (rows), then its in axis (columns) where a linear layer reads it, then (with
        /// clone noise, unless <paramref name="noise"/> is false) symmetric noise over the copies of a widened in axis, drawn
        /// from the policy's seed and <paramref name="key"/>.
        /// </summary>
        private WeightTransform Steps(TransformerTensor role, string key, bool noise = true)
        {
            long hd = _s.HeadDim;
            bool vector = role.Bias || role.Role is TransformerRole.InputNorm or TransformerRole.PostAttentionNorm or TransformerRole.FinalNorm;
            (WeightTransform Out, AxisPlan? In, long Block) steps = role.Role switch
            {
                TransformerRole.Embedding => (_vocab.Out(0, 1).Then(_hidden.Out(1, 1)), null, 1),
                TransformerRole.LmHead => (_vocab.Out(0, 1), _hidden, 1),
                TransformerRole.Query => (_query.Out(0, hd), _hidden, 1),
                TransformerRole.Key or TransformerRole.Value => (_kv.Out(0, hd), _hidden, 1),
                TransformerRole.Output => (_hidden.Out(0, 1), _query, hd),
                TransformerRole.Gate or TransformerRole.Up or TransformerRole.ExpertGate or TransformerRole.ExpertUp => (_intermediate.Out(0, 1), _hidden, 1),
                TransformerRole.Down or TransformerRole.ExpertDown => (_hidden.Out(0, 1), _intermediate, 1),
                TransformerRole.Router => (_experts?.Out(0, 1) ?? WeightTransform.Identity, _hidden, 1),
                _ => (_hidden.Out(0, 1), null, 1),
            };
            if (vector || steps.In is not { } input)
            {
                return steps.Out;
            }
            var chain = steps.Out.Then(input.In(1, steps.Block));
            if (noise && _noise > 0 && input.Op == "tile" && input.To > input.From)
            {
                chain = chain.Then(new CancellingNoise(1, input.From * steps.Block, (int)(input.To / input.From), _noise, _policy.SeedFor(key)));
            }
            return chain;
        }

        /// <summary>
        /// A fused projection (Phi-3's <c>qkv_proj</c>, <c>gate_up_proj</c>): from the source's fused tensor, or from its
        /// unfused parts stacked in row order; each part gets its unfused role's chain (<see cref="ConcatRows"/>).
        /// </summary>
        private TargetPlan PlanFused(TensorInfo target, TransformerTensor role, (TransformerRole Role, string Name)[] parts, int layer, bool identity)
        {
            var fusedSource = role.At(layer);
            var sourceRows = SourceRows(role.Role);
            TensorInfo? src;
            string from;
            if (_source.TryGetValue(fusedSource.Name, out src))
            {
                from = layer != role.Layer ? $" (from layer {layer})" : "";
            }
            else
            {
                var infos = new TensorInfo[parts.Length];
                for (int i = 0; i < parts.Length; i++)
                {
                    var name = new TransformerTensor(parts[i].Role, layer, -1, role.Bias).Name;
                    if (!_source.TryGetValue(name, out infos[i]!))
                    {
                        return Kept(target, TargetCause.NoSource, $"no source tensor {fusedSource.Name}, nor {name} to build it from");
                    }
                }
                if (infos.Any(x => x.DType != infos[0].DType || x.Shape.Rank != infos[0].Shape.Rank || !x.Shape.Skip(1).SequenceEqual(infos[0].Shape.Skip(1))))
                {
                    return Kept(target, TargetCause.NotComputable, $"{string.Join(", ", infos.Select(x => $"{x.Name} {x.DType} {x.Shape}"))}: parts of other dtypes or widths cannot be stacked");
                }
                var name0 = JoinedSource.NameOf(infos);
                src = new TensorInfo(name0, infos[0].DType, infos[0].Shape.With(0, infos.Sum(x => x.Shape[0])), infos.Sum(x => x.ByteLength));
                _joins[name0] = infos;
                from = $" (joined from the unfused {string.Join(", ", parts.Select(p => p.Name))}{(layer != role.Layer ? $" of layer {layer}" : "")})";
            }
            var chain = new ConcatRows(parts.Select((p, i) => new ConcatRows.Part(p.Name, sourceRows[i], Steps(new TransformerTensor(p.Role, role.Layer, -1, role.Bias), $"{target.Name}:{p.Name}"))));
            var where = identity ? $" (identity block: a copy of layer {layer})" : from;
            return Carried(target, src, chain, $"{Word(role.Role, upcycled: false)}{where}");
        }

        private TargetPlan Carried(TensorInfo target, TensorInfo src, WeightTransform chain, string why)
        {
            Shape produced;
            try
            {
                produced = chain.OutputShape(src.Shape);
            }
            catch (ArgumentException e)
            {
                throw Mismatch(src, $"shape {src.Shape} does not fit {_s.Path} ({e.Message})", _sourcePath);
            }
            if (!produced.SequenceEqual(target.Shape))
            {
                throw Mismatch(target, $"shape {target.Shape}, but {src.Name} {src.Shape} planned by {_s.Path} → {_t.Path} gives {produced}");
            }
            bool same = ReferenceEquals(chain, WeightTransform.Identity);
            var status = same ? src.DType == target.DType ? TargetStatus.Copied : TargetStatus.Cast : TargetStatus.Adapted;
            if (status != TargetStatus.Copied && (!src.DType.IsFloatingPoint() || !target.DType.IsFloatingPoint()))
            {
                return Kept(target, TargetCause.NotComputable, $"{src.DType}→{target.DType}: only floating-point tensors are computed on");
            }
            return new TargetPlan
            {
                Target = target, Source = src, Status = status, Layout = Layout.DefaultForRank(target.Shape.Rank), Layer = TensorName.LayerOf(target.Name),
                Transform = chain, Complete = true, Cause = TargetCause.Transferred,
                Match = src.Name == target.Name ? new NameMatch(target.Name, src.Name, MatchKind.Exact, "same name") : null,
                Reason = same ? why : $"{why}: {chain.Describe()}",
            };
        }

        private TransferPlanException Mismatch(TensorInfo tensor, string detail, string? file = null) =>
            new($"{file ?? "template"}: tensor '{tensor.Name}': {detail}.");

        private static string Word(TransformerRole role, bool upcycled) => role switch
        {
            TransformerRole.Embedding => "embedding",
            TransformerRole.Query => "q_proj",
            TransformerRole.Key => "k_proj",
            TransformerRole.Value => "v_proj",
            TransformerRole.Output => "o_proj",
            TransformerRole.Gate => "gate_proj",
            TransformerRole.Up => "up_proj",
            TransformerRole.Down => "down_proj",
            TransformerRole.FusedQkv => "qkv_proj (fused q, k, v)",
            TransformerRole.FusedGateUp => "gate_up_proj (fused gate, up)",
            TransformerRole.InputNorm or TransformerRole.PostAttentionNorm or TransformerRole.FinalNorm => "RMSNorm scale",
            TransformerRole.LmHead => "lm_head",
            TransformerRole.Router => "router",
            TransformerRole.ExpertGate => upcycled ? "expert w1 (a copy of the dense gate_proj)" : "expert w1 (gate)",
            TransformerRole.ExpertUp => upcycled ? "expert w3 (a copy of the dense up_proj)" : "expert w3 (up)",
            TransformerRole.ExpertDown => upcycled ? "expert w2 (a copy of the dense down_proj)" : "expert w2 (down)",
            _ => role.ToString(),
        };
    }
}
