using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// A transfer that would carry nothing from its source (or only a classifier head) is refused, never reported as a
/// success: nothing is written. The message names the likely cause and the fix (the CLI exits 5, as for other planned
/// refusals).
/// </summary>
public sealed class TransferRefusedException(string message, string? fix = null) : Exception(message)
{
    /// <summary>The fix the message suggests (for example <c>--rename '^=backbone.'</c>), when one is known.</summary>
    public string? Fix { get; } = fix;
}

/// <summary>The checks that keep a plan from passing for a transfer when it carries nothing, and the warnings for options that match nothing.</summary>
internal static class EmptyTransfer
{
    /// <summary>
    /// Target layers paired with a source tensor (by name, rename, structure or the graph), the head's excepted. A pair
    /// later kept by a rule or for its dtype still counts: the report explains it per tensor, and <c>--strict</c>
    /// refuses it; what this check refuses is a transfer whose matching found nothing.
    /// </summary>
    internal static int CarriedLayers(TransferPlan plan, string? head, out bool headCarried)
    {
        var layers = new HashSet<string>(StringComparer.Ordinal);
        headCarried = false;
        foreach (var t in plan.Targets)
        {
            if (t.Match is null)
            {
                continue;
            }
            if (t.Layer == head)
            {
                headCarried = true;
                continue;
            }
            layers.Add(t.Layer);
        }
        return layers.Count;
    }

    /// <summary>
    /// The template's classifier head: the layer of the last weight the policy's <see cref="TransferPolicy.HeadPattern"/>
    /// names (the planner's own test for a head), or null. The last linear layer of a network is not a head by shape
    /// alone: a template of two linear layers whose first has no source carries its second for real.
    /// </summary>
    internal static string? HeadLayer(IReadOnlyList<TensorInfo> template, TransferPolicy policy)
    {
        var head = NamePatterns.CompileRegex(policy.HeadPattern, "Head pattern (TransferPolicy.HeadPattern)");
        for (int i = template.Count - 1; i >= 0; i--)
        {
            var n = TensorName.Parse(template[i].Name);
            if (n.IsLayerWeight && head.IsMatch(template[i].Name))
            {
                return n.Layer;
            }
        }
        return null;
    }

    /// <summary>The layer of the template's last rank-2 weight (a network's last linear layer: its classifier, read by structure), or null.</summary>
    internal static string? LastLinearLayer(IReadOnlyList<TensorInfo> template)
    {
        for (int i = template.Count - 1; i >= 0; i--)
        {
            var n = TensorName.Parse(template[i].Name);
            if (n.IsLayerWeight && template[i].Shape.Rank == 2)
            {
                return n.Layer;
            }
        }
        return null;
    }

    /// <summary>Throws <see cref="TransferRefusedException"/> when the plan carries nothing but (at most) a head.</summary>
    internal static void Check(TransferPlan plan, IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template)
    {
        var headLayer = HeadLayer(template, plan.Policy);
        if (template.Count == 0 || plan.Policy.Strict || CarriedLayers(plan, headLayer, out bool head) > 0
            || (head && template.All(t => TensorName.LayerOf(t.Name) == headLayer)))
        {
            // Under --strict an empty transfer is refused anyway (every target is a violation); a template that is only
            // a head is carried when its head is.
            return;
        }
        var what = head ? "only the classifier head" : "nothing";
        var message = $"Refused: {what} would be carried over from {plan.SourcePath} into {plan.TemplatePath} " +
            $"(0 of the template's {template.Count} tensors outside the head have a source); writing the template back would look like a transfer";
        var (cause, fix) = Explain(source, template);
        throw new TransferRefusedException($"{message}. Likely cause: {cause}. Fix: {fix}", fix);
    }

    /// <summary>Why names did not meet, and what would make them meet.</summary>
    internal static (string Cause, string Fix) Explain(IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template)
    {
        if (source.Count == 0)
        {
            return ("the source has no tensors", "give a checkpoint with weights");
        }
        if (PrefixOf(template, source) is { } added)
        {
            return ($"every template name is '{added.Prefix}' + a source name ({added.Count} of {template.Count}, e.g. '{added.Example}')",
                $"--rename '^={added.Prefix}' (library: TransferPolicy.Renames = [new RenameRule(\"^\", \"{added.Prefix}\")])");
        }
        if (PrefixOf(source, template) is { } extra)
        {
            var pattern = "^" + System.Text.RegularExpressions.Regex.Escape(extra.Prefix);
            return ($"every source name is '{extra.Prefix}' + a template name ({extra.Count} of {source.Count}, e.g. '{extra.Example}')",
                $"--rename '{pattern}=' (library: TransferPolicy.Renames = [new RenameRule(@\"{pattern}\", \"\")])");
        }
        return ($"the names share nothing (source '{source[0].Name}', template '{template[0].Name}') and the source carries no graph to match layers by structure",
            "--rename 'REGEX=REPLACEMENT' rules that turn source names into template names (graft plan shows the result), or an ONNX source, whose layers are matched by their place in the graph");
    }

    /// <summary>
    /// The dotted prefix P such that the most names of <paramref name="longer"/> are P + a name of
    /// <paramref name="shorter"/>, when it explains at least half of <paramref name="shorter"/>.
    /// </summary>
    internal static (string Prefix, int Count, string Example)? PrefixOf(IReadOnlyList<TensorInfo> longer, IReadOnlyList<TensorInfo> shorter)
    {
        var names = new HashSet<string>(shorter.Select(s => s.Name), StringComparer.Ordinal);
        var counts = new Dictionary<string, (int Count, string Example)>(StringComparer.Ordinal);
        foreach (var t in longer)
        {
            var n = t.Name;
            for (int i = n.IndexOf('.'); i >= 0 && i < n.Length - 1; i = n.IndexOf('.', i + 1))
            {
                if (names.Contains(n[(i + 1)..]))
                {
                    var p = n[..(i + 1)];
                    counts[p] = counts.TryGetValue(p, out var c) ? (c.Count + 1, c.Example) : (1, n);
                }
            }
        }
        if (counts.Count == 0)
        {
            return null;
        }
        var best = counts.MaxBy(kv => kv.Value.Count);
        return best.Value.Count * 2 >= Math.Min(names.Count, longer.Count) ? (best.Key, best.Value.Count, best.Value.Example) : null;
    }

    /// <summary>Warnings for rules, renames and an image size that touch no tensor: they did nothing, which is rarely what was meant.</summary>
    internal static List<string> Warnings(TransferPolicy policy, IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template)
    {
        var warnings = new List<string>();
        foreach (var r in policy.Rules)
        {
            if (!template.Any(t => r.Matches(t.Name)))
            {
                warnings.Add($"warning: rule '{r.Pattern}' matches no template tensor; it changes nothing");
            }
        }
        foreach (var r in policy.Renames)
        {
            var regex = r.Regex();
            if (!source.Any(s => regex.IsMatch(s.Name) || regex.IsMatch(NameMatcher.Strip(s.Name, policy))))
            {
                warnings.Add($"warning: rename '{r.Pattern}' matches no source tensor; it changes nothing");
            }
        }
        if (policy.ImageSize is { } image && !template.Any(t => TransferPlanner.IsPositionEmbedding(t.Name)))
        {
            warnings.Add($"warning: --image-size {image} is for a vision transformer's position grid, and the template has no position embedding; it changes nothing");
        }
        return warnings;
    }
}
