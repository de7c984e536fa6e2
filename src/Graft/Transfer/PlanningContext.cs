using System.Text.RegularExpressions;
using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// What the planner's first stages established and the later ones read: the pairs (match), each template tensor's
/// typed role (classify) and the rules that apply to a tensor (resolve rules). Built once per plan; nothing in it
/// changes while layers are planned.
/// </summary>
internal sealed class PlanningContext
{
    private const string HeadPatternWhat = "Head pattern (TransferPolicy.HeadPattern)";

    /// <summary>The rules no tensor-specific rule changes: what every tensor of a policy without rules gets.</summary>
    private static readonly TensorRule NoRule = new("*");

    private readonly Dictionary<string, TensorInfo> _sourceByName = new(StringComparer.Ordinal);
    private readonly IReadOnlyDictionary<string, NameMatch> _matches;
    private readonly IReadOnlyDictionary<string, RoleEvidence> _roles;
    private readonly Regex _head;

    public PlanningContext(IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template, TransferPolicy policy,
        IReadOnlyDictionary<string, NameMatch> matches, IReadOnlyDictionary<string, RoleEvidence> roles)
    {
        Template = template;
        Policy = policy;
        _matches = matches;
        _roles = roles;
        _head = NamePatterns.CompileRegex(policy.HeadPattern, HeadPatternWhat);
        _sourceByName.EnsureCapacity(source.Count);
        foreach (var s in source)
        {
            _sourceByName[s.Name] = s;
        }
        FirstConv = template.FirstOrDefault(t => RoleOf(t.Name) == TensorRole.ConvWeight)?.Name;
        SourcePrefix = NameConventions.PrefixTokensOf(source);
        TemplatePrefix = NameConventions.PrefixTokensOf(template);
        // A ViT's patch size is its patch embedding's (square) kernel.
        TemplatePatch = template.FirstOrDefault(t => t.Shape.Rank == 4 && RoleOf(t.Name) == TensorRole.ConvWeight
            && NameConventions.IsPatchEmbedding(TensorName.LayerOf(t.Name)) && t.Shape[2] == t.Shape[3])?.Shape[2];
    }

    /// <summary>The target tensors, in template order.</summary>
    public IReadOnlyList<TensorInfo> Template { get; }

    /// <summary>The policy.</summary>
    public TransferPolicy Policy { get; }

    /// <summary>The notes the stages collect.</summary>
    public PlanNotes Notes { get; } = new();

    /// <summary>The network's first convolution weight: the stem, whose inputs are an image's channels.</summary>
    public string? FirstConv { get; }

    /// <summary>Prefix tokens the source's token tensors declare (class, distillation, registers), or null.</summary>
    public int? SourcePrefix { get; }

    /// <summary>Prefix tokens the template's token tensors declare, or null.</summary>
    public int? TemplatePrefix { get; }

    /// <summary>The template's patch size (its patch embedding's square kernel), or null.</summary>
    public long? TemplatePatch { get; }

    /// <summary>The source paired with <paramref name="targetName"/>, or null.</summary>
    public TensorInfo? FindSource(string targetName) =>
        _matches.TryGetValue(targetName, out var m) ? _sourceByName[m.Source] : null;

    /// <summary>How <paramref name="targetName"/> was paired, or null.</summary>
    public NameMatch? MatchOf(string targetName) => _matches.TryGetValue(targetName, out var m) ? m : null;

    /// <summary>The typed role of a template tensor.</summary>
    public TensorRole RoleOf(string targetName) => _roles.TryGetValue(targetName, out var r) ? r.Role : TensorRole.Unknown;

    /// <summary>The rules that apply to <paramref name="name"/>, merged in order (later rules win).</summary>
    public TensorRule RulesFor(string name)
    {
        var merged = NoRule;
        foreach (var r in Policy.Rules)
        {
            if (r.Matches(name))
            {
                merged = merged.Then(r);
            }
        }
        return merged;
    }

    /// <summary>True when the policy's head pattern marks <paramref name="name"/> as a classifier head.</summary>
    public bool IsHead(string name)
    {
        try
        {
            return _head.IsMatch(name);
        }
        catch (RegexMatchTimeoutException)
        {
            throw NamePatterns.TimedOut(HeadPatternWhat, Policy.HeadPattern, name);
        }
    }

    /// <summary>FNV-1a of the name mixed with the policy seed: reproducible, and different per tensor.</summary>
    public long SeedFor(string name) => SeedFor(Policy.Seed, name);

    /// <summary>FNV-1a of <paramref name="name"/> mixed with <paramref name="seed"/>: one stream per tensor, for every planner.</summary>
    public static long SeedFor(long seed, string name)
    {
        ulong h = 14695981039346656037UL;
        foreach (var ch in name)
        {
            h = (h ^ ch) * 1099511628211UL;
        }
        return (long)((h ^ (ulong)seed) & 0x7FFF_FFFF_FFFF_FFFFUL);
    }
}
