using System.Text.RegularExpressions;
using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// A user rename: source names matching <see cref="Pattern"/> (a .NET regex) are rewritten with
/// <see cref="Replacement"/> (<c>$1</c> and <c>${name}</c> refer to groups) and paired with the target of that name.
/// Rules are tried in order and the first that matches a source name wins, so each source has one explanation.
/// </summary>
/// <param name="Pattern">Regex on source names (tried on the full name, then on the name with wrapper prefixes stripped).</param>
/// <param name="Replacement">Replacement producing a target name.</param>
public sealed record RenameRule(string Pattern, string Replacement)
{
    /// <summary>
    /// Parses <c>PATTERN=REPLACEMENT</c> (the last <c>=</c> splits, so a pattern may hold <c>=</c> only when escaped
    /// as <c>\x3D</c>); the CLI's <c>--rename</c> uses this spelling.
    /// </summary>
    /// <exception cref="InvalidInputException">The text has no <c>=</c> after a pattern.</exception>
    public static RenameRule Parse(string text)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        int eq = text.LastIndexOf('=');
        if (eq <= 0)
        {
            throw new InvalidInputException($"Rename rule '{text}' must read PATTERN=REPLACEMENT.");
        }
        return new RenameRule(text[..eq], text[(eq + 1)..]);
    }

    /// <summary>What messages call a rename rule: the library's name and the CLI's option.</summary>
    internal const string What = "Rename rule (--rename)";

    internal Regex Regex() => NamePatterns.CompileRegex(Pattern, What);
}

/// <summary>How a target tensor found its source; reported so that guesses can be told from certainties.</summary>
public enum MatchKind
{
    /// <summary>Same name.</summary>
    Exact,
    /// <summary>Same name once wrapper prefixes (<c>module.</c>, <c>_orig_mod.</c>, <c>model.</c>) are stripped.</summary>
    Prefix,
    /// <summary>A user rename rule produced the target's name.</summary>
    Rename,
    /// <summary>
    /// A guess by position and role (the n-th unmatched layer of one signature paired with the n-th of the same
    /// signature); only with <see cref="TransferPolicy.StructuralMatching"/>, and refusable per tensor.
    /// </summary>
    Structural,
    /// <summary>
    /// Paired by the computation graph: the source's unit and the target's have the same op and place in the data flow
    /// (used with no option when names share almost nothing and the source has a graph); the match says the evidence.
    /// </summary>
    Graph,
}

/// <summary>One target paired with one source.</summary>
/// <param name="Target">Target tensor name.</param>
/// <param name="Source">Source tensor name.</param>
/// <param name="Kind">How the pair was found.</param>
/// <param name="Why">The rule or signature that made the pair, for the report.</param>
public sealed record NameMatch(string Target, string Source, MatchKind Kind, string Why);

/// <summary>
/// Pairs target tensors with source tensors: exact names, then stripped wrapper prefixes, then user renames, then
/// (only when asked) a structural guess. Runs on names and shapes alone, before any data is read.
/// </summary>
public static class NameMatcher
{
    private static readonly string[] KnownMembers = [NameConventions.Weight, NameConventions.Bias, NameConventions.RunningMean, NameConventions.RunningVar, NameConventions.BatchCount];

    /// <summary>Pairs every target it can; targets without a source are absent from the result.</summary>
    /// <exception cref="TransferPlanException">
    /// Rename rules conflict (two sources renamed to one target) or produce a name the template does not have.
    /// </exception>
    public static IReadOnlyDictionary<string, NameMatch> Match(IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template, TransferPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(policy);
        // Every set and map here has an entry per tensor: built only when a step needs it, never as LINQ groupings
        // (a header of 200,000 tensors made four of those at once).
        var result = new Dictionary<string, NameMatch>(template.Count, StringComparer.Ordinal);
        var usedSources = new HashSet<string>(StringComparer.Ordinal);

        // 1. Renames first: an explicit rule states intent and beats a coincidental equal name.
        var rules = policy.Renames.Select(r => (Rule: r, Regex: r.Regex())).ToList();
        if (rules.Count > 0)
        {
            var targetNames = new HashSet<string>(template.Select(t => t.Name), StringComparer.Ordinal);
            var targetByStripped = UniqueByStripped(template, policy);
            var renamedFrom = new Dictionary<string, (string Source, RenameRule Rule)>(StringComparer.Ordinal);
            foreach (var s in source)
            {
                foreach (var (rule, regex) in rules)
                {
                    string? candidate;
                    try
                    {
                        candidate = regex.IsMatch(s.Name) ? regex.Replace(s.Name, rule.Replacement)
                            : regex.IsMatch(Strip(s.Name, policy)) ? regex.Replace(Strip(s.Name, policy), rule.Replacement)
                            : null;
                    }
                    catch (RegexMatchTimeoutException)
                    {
                        throw NamePatterns.TimedOut(RenameRule.What, rule.Pattern, s.Name);
                    }
                    if (candidate is null)
                    {
                        continue;
                    }
                    string? target = targetNames.Contains(candidate) ? candidate
                        : targetByStripped.TryGetValue(Strip(candidate, policy), out var t) ? t : null;
                    if (target is null)
                    {
                        throw new TransferPlanException($"Rename rule '{rule.Pattern}' → '{rule.Replacement}' turns source '{s.Name}' into '{candidate}', which the template does not have.");
                    }
                    if (renamedFrom.TryGetValue(target, out var earlier))
                    {
                        throw new TransferPlanException($"Rename rules conflict: source '{earlier.Source}' (rule '{earlier.Rule.Pattern}') and source '{s.Name}' (rule '{rule.Pattern}') both become target '{target}'.");
                    }
                    renamedFrom[target] = (s.Name, rule);
                    break;
                }
            }
            foreach (var (target, (src, rule)) in renamedFrom)
            {
                result[target] = new NameMatch(target, src, MatchKind.Rename, $"rename '{rule.Pattern}' → '{rule.Replacement}'");
                usedSources.Add(src);
            }
        }

        // 2. Exact names (a name is unique in its checkpoint, so an exact pair never takes another target's source).
        var sourceNames = new HashSet<string>(source.Count, StringComparer.Ordinal);
        foreach (var s in source)
        {
            sourceNames.Add(s.Name);
        }
        int exact = 0;
        foreach (var t in template)
        {
            if (!result.ContainsKey(t.Name) && sourceNames.Contains(t.Name) && !usedSources.Contains(t.Name))
            {
                result[t.Name] = new NameMatch(t.Name, t.Name, MatchKind.Exact, "same name");
                exact++;
            }
        }

        // 3. Stripped prefixes (unambiguous among the sources no rename took), when a target and a source are still
        // unpaired.
        Dictionary<string, string>? sourceByStripped = result.Count < template.Count && usedSources.Count + exact < source.Count
            ? UniqueByStripped(source.Where(s => !usedSources.Contains(s.Name)), policy)
            : null;
        foreach (var m in result.Values)
        {
            if (m.Kind == MatchKind.Exact)
            {
                usedSources.Add(m.Source);
            }
        }
        if (sourceByStripped is not null)
        {
            foreach (var t in template)
            {
                if (!result.ContainsKey(t.Name) && sourceByStripped.TryGetValue(Strip(t.Name, policy), out var s) && !usedSources.Contains(s))
                {
                    result[t.Name] = new NameMatch(t.Name, s, MatchKind.Prefix, "same name without wrapper prefixes");
                    usedSources.Add(s);
                }
            }
        }

        // 4. Structural guesses, only when asked.
        if (policy.StructuralMatching)
        {
            foreach (var m in Structural(source.Where(s => !usedSources.Contains(s.Name)).ToList(),
                         template.Where(t => !result.ContainsKey(t.Name)).ToList(), policy))
            {
                result[m.Target] = m;
            }
        }
        return result;
    }

    /// <summary>
    /// Each stripped name (<see cref="Strip"/>) that exactly one tensor has, mapped to that tensor's name; stripped
    /// names two tensors share are ambiguous and absent.
    /// </summary>
    private static Dictionary<string, string> UniqueByStripped(IEnumerable<TensorInfo> tensors, TransferPolicy policy)
    {
        var unique = new Dictionary<string, string>(StringComparer.Ordinal);
        var ambiguous = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            var key = Strip(t.Name, policy);
            if (!ambiguous.Contains(key) && !unique.TryAdd(key, t.Name))
            {
                unique.Remove(key);
                ambiguous.Add(key);
            }
        }
        return unique;
    }

    /// <summary>Removes the policy's wrapper prefixes, repeatedly (<c>module._orig_mod.x</c> → <c>x</c>).</summary>
    public static string Strip(string name, TransferPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(policy);
        bool again = true;
        while (again)
        {
            again = false;
            foreach (var p in policy.StrippedPrefixes)
            {
                if (p.Length > 0 && name.StartsWith(p, StringComparison.Ordinal) && name.Length > p.Length)
                {
                    name = name[p.Length..];
                    again = true;
                }
            }
        }
        return name;
    }

    /// <summary>
    /// Pairs whole layers: a layer's signature is its members' roles (member name and rank, with the weight's layout
    /// kind). The n-th unmatched target layer of a signature takes the n-th unmatched source layer of the same
    /// signature, so a bias is never paired with another layer's weight and roles never mix.
    /// </summary>
    private static List<NameMatch> Structural(List<TensorInfo> source, List<TensorInfo> template, TransferPolicy policy)
    {
        var sourceLayers = LayerGroups.Of(source);
        var queues = new Dictionary<string, Queue<int>>(StringComparer.Ordinal);
        for (int l = 0; l < sourceLayers.Count; l++)
        {
            var sig = Signature(source, sourceLayers.Members(l));
            if (!queues.TryGetValue(sig, out var q))
            {
                queues[sig] = q = new Queue<int>();
            }
            q.Enqueue(l);
        }
        var matches = new List<NameMatch>();
        var whys = new Dictionary<string, string>(StringComparer.Ordinal);
        var templateLayers = LayerGroups.Of(template);
        for (int l = 0; l < templateLayers.Count; l++)
        {
            var layer = templateLayers.Members(l);
            var sig = Signature(template, layer);
            if (!queues.TryGetValue(sig, out var q) || q.Count == 0)
            {
                continue;
            }
            // A refused layer still consumes its candidate: refusing one guess must not shift every later guess.
            var candidate = sourceLayers.Members(q.Dequeue());
            if (policy.Rules.Any(r => r.Structural == false) && Any(layer, i => policy.Rules.Any(r => r.Structural == false && r.Matches(template[i].Name))))
            {
                continue;
            }
            // Equal signatures: the same members, each once (names are unique, and a layer's share its prefix).
            if (!whys.TryGetValue(sig, out var why))
            {
                // One sentence per signature, shared by its guesses.
                whys[sig] = why = $"guessed: same position among layers with members {sig}";
            }
            var byMember = new Dictionary<string, TensorInfo>(candidate.Length, StringComparer.Ordinal);
            foreach (var c in candidate)
            {
                byMember[TensorName.MemberOf(source[c].Name)] = source[c];
            }
            foreach (var i in layer)
            {
                var t = template[i];
                var s = byMember[TensorName.MemberOf(t.Name)];
                matches.Add(new NameMatch(t.Name, s.Name, MatchKind.Structural, why));
            }
        }
        return matches;
    }

    private static bool Any(ReadOnlySpan<int> indices, Func<int, bool> test)
    {
        foreach (var i in indices)
        {
            if (test(i))
            {
                return true;
            }
        }
        return false;
    }

    private static string Signature(List<TensorInfo> tensors, ReadOnlySpan<int> layer)
    {
        var roles = new string[layer.Length];
        for (int k = 0; k < roles.Length; k++)
        {
            roles[k] = Role(tensors[layer[k]]);
        }
        Array.Sort(roles, StringComparer.Ordinal);
        return string.Join(",", roles);
    }

    private static string Role(TensorInfo t)
    {
        var member = TensorName.MemberOf(t.Name);
        var kind = KnownMembers.Contains(member) ? member : "other:" + member;
        return $"{kind}/{Layout.DefaultForRank(t.Shape.Rank)}";
    }
}
