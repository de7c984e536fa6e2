using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>What a plan does to one target tensor, as the verdict counts it.</summary>
public enum TargetFate
{
    /// <summary>Copied or cast: the source's values as they are.</summary>
    Exact,
    /// <summary>Every source value used and some values added from init or zeros (new out channels, new inputs, a padded kernel).</summary>
    Grown,
    /// <summary>Some of the source's values left behind (fewer channels or inputs kept, a cropped kernel).</summary>
    Shrunk,
    /// <summary>Every source value used, reshaped without new values (inputs summed or repeated, a kernel or position grid resampled).</summary>
    Reshaped,
    /// <summary>A classifier head with another class count keeps its init.</summary>
    NewHead,
    /// <summary>Reinitialised or skipped because a rule asked for it (<c>--reinit</c>, <c>--skip</c>), or a member of such a layer.</summary>
    OnRequest,
    /// <summary>A buffer the target computes for its own geometry: the template's value is the right one.</summary>
    TemplateBuffer,
    /// <summary>Not carried over although nothing asked for that: no source, incompatible shapes, a dtype that cannot be computed on.</summary>
    NotCarriedOver,
}

/// <summary>
/// The typed counts behind a verdict, computed from a plan's entries only (headers, never values): what happened to each
/// target, how many of the source's values were left behind, and whether the growth keeps the source's function. The
/// plan and the transfer's report both take their summary from here, so they cannot disagree.
/// </summary>
internal static class TransferAccount
{
    /// <summary>The fate of each target; <paramref name="requestedLayers"/> from <see cref="RequestedLayers"/>.</summary>
    public static TargetFate FateOf(TargetPlan t, HashSet<string> requestedLayers)
    {
        switch (t.Status)
        {
            case TargetStatus.Copied or TargetStatus.Cast:
                return TargetFate.Exact;
            case TargetStatus.Reinitialized:
                return TargetFate.OnRequest;
            case TargetStatus.Kept:
                return t.Cause switch
                {
                    TargetCause.TemplateBuffer => TargetFate.TemplateBuffer,
                    TargetCause.Skipped or TargetCause.Reinitialized => TargetFate.OnRequest,
                    _ when t.NewHead => TargetFate.NewHead,
                    TargetCause.LayerNotTransferred when requestedLayers.Contains(t.Layer) => TargetFate.OnRequest,
                    _ => TargetFate.NotCarriedOver,
                };
        }
        if (t.Source is null)
        {
            return TargetFate.Reshaped;
        }
        if (UsedValues(t) < t.Source.Shape.ElementCount)
        {
            return TargetFate.Shrunk;
        }
        bool grows = t.Out is { } o && o.TargetCount > o.SourceCount
            || t.In is { } i && i.TargetCount > i.SourceCount && (i.Rule == InChannelRule.ZeroExtend || i.Follows is not null)
            || t.Kernel is { Rule: KernelRule.Fit } k && t.Layout.KernelAxes.Select((a, j) => k.TargetSize[j] > t.Source.Shape[a]).Any(g => g);
        return grows ? TargetFate.Grown : TargetFate.Reshaped;
    }

    /// <summary>Layers whose weight a rule reinitialised or skipped: their other members share that fate.</summary>
    public static HashSet<string> RequestedLayers(IReadOnlyList<TargetPlan> targets)
    {
        var layers = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            if (t.Cause is TargetCause.Reinitialized or TargetCause.Skipped)
            {
                layers.Add(t.Layer);
            }
        }
        return layers;
    }

    /// <summary>
    /// How many of the source tensor's values the target is made from: all for a copy, a cast and a transform that reads
    /// every value (a sum of inputs, a resampled kernel); for a kept first-n or largest-norm selection of out channels,
    /// truncated inputs or a cropped kernel, the share kept along each axis.
    /// </summary>
    public static long UsedValues(TargetPlan t)
    {
        if (t.Source is not { } s)
        {
            return 0;
        }
        long used = s.Shape.ElementCount;
        if (t.Status != TargetStatus.Adapted || used == 0)
        {
            return used;
        }
        if (t.Out is { } o && o.TargetCount < o.SourceCount && o.SourceCount > 0)
        {
            used = used / o.SourceCount * o.TargetCount;
        }
        if (t.In is { } i && i.TargetCount < i.SourceCount && i.SourceCount > 0 && (i.Rule == InChannelRule.Truncate || i.Follows is not null))
        {
            used = used / i.SourceCount * i.TargetCount;
        }
        if (t.Kernel is { Rule: KernelRule.Fit } k)
        {
            var axes = t.Layout.KernelAxes;
            for (int j = 0; j < axes.Count; j++)
            {
                long from = s.Shape[axes[j]], to = k.TargetSize[j];
                if (to < from && from > 0)
                {
                    used = used / from * to;
                }
            }
        }
        return used;
    }

    /// <summary>
    /// Why the growth in <paramref name="targets"/> does not keep the source's function, one line per tensor (empty when
    /// it does, or nothing grew). New channels filled from init, zeros or at random are silent when every layer reading
    /// them gives them zero weights (what the planner does to grown inputs); that is exact behind a per-channel
    /// normalisation (BatchNorm), not behind one over all channels (LayerNorm, RMSNorm), not for attention heads, and
    /// not for copies that nothing rescales.
    /// </summary>
    public static List<string> GrowthProblems(IReadOnlyList<TargetPlan> targets, int limit = int.MaxValue, bool kernels = true)
    {
        var problems = new List<string>();
        var requested = RequestedLayers(targets);
        var runningStats = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            if (t.Role is TensorRole.NormMean or TensorRole.NormVar)
            {
                runningStats.Add(t.Layer);
            }
        }
        foreach (var t in targets)
        {
            if (problems.Count >= limit)
            {
                break;
            }
            if (FateOf(t, requested) != TargetFate.Grown)
            {
                continue;
            }
            var name = t.Target.Name;
            bool outGrows = t.Out is { } o && o.TargetCount > o.SourceCount;
            if (outGrows && t.Out!.NewChannels == NewChannelRule.Copies)
            {
                problems.Add($"{name}: new channels are copies that the next layers do not rescale (Net2WiderNet does)");
            }
            else if (outGrows && t.Target.Shape.Rank == 1 && !runningStats.Contains(t.Layer) && IsTokenNorm(t.Layer))
            {
                problems.Add($"{name}: {t.Layer} looks like a LayerNorm or RMSNorm (a 1-D weight, no running statistics), which normalises over all channels: zero-padded channels change its statistics");
            }
            else if (outGrows && IsAttentionProjection(t.Layer, name))
            {
                problems.Add($"{name}: an attention projection with more outputs: new heads or wider heads change how attention splits and scales, which zero-padding does not keep");
            }
            else if (kernels && t.Kernel is { } k && t.Source is { } s)
            {
                var axes = t.Layout.KernelAxes;
                if (axes.Select((a, j) => k.TargetSize[j] - s.Shape[a]).Any(d => d < 0 || d % 2 != 0))
                {
                    problems.Add($"{name}: kernel {string.Join("×", axes.Select(a => s.Shape[a]))}→{string.Join("×", k.TargetSize)}: only growth by an even amount per axis keeps the function");
                }
            }
        }
        return problems;
    }

    /// <summary>A normalisation over the whole feature vector, told from its name: <c>*norm*</c>, <c>ln*</c>, <c>layernorm</c>.</summary>
    internal static bool IsTokenNorm(string layer)
    {
        var last = layer[(layer.LastIndexOf('.') + 1)..].ToLowerInvariant();
        return last.Contains("norm", StringComparison.Ordinal) || last.StartsWith("ln", StringComparison.Ordinal);
    }

    private static readonly HashSet<string> AttentionLayers = new(StringComparer.OrdinalIgnoreCase)
    {
        "q_proj", "k_proj", "v_proj", "qkv", "qkv_proj", "in_proj", "query", "key", "value", "q", "k", "v", "c_attn", "wqkv", "wq", "wk", "wv",
    };

    private static bool IsAttentionProjection(string layer, string name)
    {
        var last = layer[(layer.LastIndexOf('.') + 1)..];
        return AttentionLayers.Contains(last) || TensorName.MemberOf(name) == "in_proj_weight" || TensorName.MemberOf(name) == "in_proj_bias";
    }

    /// <summary>The summary of <paramref name="plan"/>: counts by status and by fate, values left behind, the verdict.</summary>
    public static ReportSummary Summarise(TransferPlan plan)
    {
        var targets = plan.Targets;
        var requested = RequestedLayers(targets);
        int copied = 0, cast = 0, adapted = 0, reinitialised = 0, kept = 0;
        int grown = 0, shrunk = 0, onRequest = 0, newHead = 0, notCarriedOver = 0;
        var used = new Dictionary<string, (long Values, long Used)>(StringComparer.Ordinal);
        var headSources = new HashSet<string>(StringComparer.Ordinal);
        var askedSources = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            switch (t.Status)
            {
                case TargetStatus.Copied: copied++; break;
                case TargetStatus.Cast: cast++; break;
                case TargetStatus.Adapted: adapted++; break;
                case TargetStatus.Reinitialized: reinitialised++; break;
                case TargetStatus.Kept: kept++; break;
            }
            var fate = FateOf(t, requested);
            if (fate == TargetFate.OnRequest && t.Match is not null)
            {
                // What a rule reinitialised or skipped leaves its source behind on purpose.
                askedSources.Add(t.Match.Source);
            }
            switch (fate)
            {
                case TargetFate.Grown: grown++; break;
                case TargetFate.Shrunk: shrunk++; break;
                case TargetFate.OnRequest: onRequest++; break;
                case TargetFate.NewHead: newHead++; break;
                case TargetFate.NotCarriedOver: notCarriedOver++; break;
            }
            if (t.NewHead && t.Match is not null)
            {
                headSources.Add(t.Match.Source);
            }
            if (t.Source is { } s)
            {
                long u = UsedValues(t);
                used[s.Name] = used.TryGetValue(s.Name, out var v) ? (v.Values, Math.Max(v.Used, u)) : (s.Shape.ElementCount, u);
            }
        }
        long values = 0, leftBehind = 0, headValues = 0;
        foreach (var (_, v) in used)
        {
            values += v.Values;
            leftBehind += v.Values - v.Used;
        }
        foreach (var u in plan.UnusedSources)
        {
            if (used.ContainsKey(u.Name))
            {
                continue;
            }
            values += u.Shape.ElementCount;
            if (headSources.Contains(u.Name))
            {
                headValues += u.Shape.ElementCount;
            }
            else if (!askedSources.Contains(u.Name))
            {
                leftBehind += u.Shape.ElementCount;
            }
        }
        var growthProblems = grown > 0 ? GrowthProblems(targets, limit: 1) : [];
        return new ReportSummary(targets.Count, copied, cast, adapted, reinitialised, kept, plan.UnusedSources.Count, plan.StrictViolations.Count == 0)
        {
            Grown = grown,
            Shrunk = shrunk,
            OnRequest = onRequest,
            NewHead = newHead,
            NotCarriedOver = notCarriedOver,
            SourceValues = values,
            SourceValuesLeftBehind = leftBehind,
            HeadValuesLeftBehind = headValues,
            GrowthKeepsFunction = grown > 0 ? growthProblems.Count == 0 : null,
            GrowthChangesFunctionBecause = growthProblems.FirstOrDefault(),
        };
    }
}
