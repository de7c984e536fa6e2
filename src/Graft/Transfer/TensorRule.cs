using System.Text.RegularExpressions;
using Graft.Checkpoints;

using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>
/// Overrides for the tensors whose target name matches <see cref="Pattern"/> (a glob: <c>*</c> any characters,
/// <c>?</c> one). Null members leave the policy's value. For a layer, the weight's name decides; its bias and
/// BatchNorm statistics follow the weight's decision. Later rules win.
/// </summary>
public sealed record TensorRule(string Pattern)
{
    /// <summary>Out-channel shrinking rule.</summary>
    public OutShrinkRule? OutShrink { get; init; }

    /// <summary>New out-channel rule.</summary>
    public NewChannelRule? NewChannels { get; init; }

    /// <summary>In-channel rule.</summary>
    public InChannelRule? InChannels { get; init; }

    /// <summary>Kernel rule.</summary>
    public KernelRule? Kernel { get; init; }

    /// <summary>Head rule (and marks matching layers as heads).</summary>
    public HeadRule? Head { get; init; }

    /// <summary>When true, keep the template's values for matching tensors (nothing transferred).</summary>
    public bool? Skip { get; init; }

    /// <summary>When true, reinitialise matching weights (Kaiming-normal, fan_out, ReLU) whatever their shapes; biases keep the template's init.</summary>
    public bool? Reinit { get; init; }

    /// <summary>
    /// False refuses structural guesses for matching target tensors (a guessed layer is refused when any of its
    /// tensors matches); they stay unmatched and are reported so.
    /// </summary>
    public bool? Structural { get; init; }

    /// <summary>
    /// Declares the layout of matching weights when the default by rank is wrong (transposed or grouped convolutions).
    /// </summary>
    public Layout? Layout { get; init; }

    /// <summary>A position embedding's target grid (rows × columns), when it is not square or not the image size's.</summary>
    public PatchGrid? Grid { get; init; }

    /// <summary>A position embedding's source grid, when it is not square.</summary>
    public PatchGrid? SourceGrid { get; init; }

    /// <summary>Prefix tokens (class, distillation, registers) before a position embedding's grid, when the checkpoints do not tell.</summary>
    public int? PrefixTokens { get; init; }

    /// <summary>How a position embedding's grid is resampled (bicubic by default, as timm).</summary>
    public PositionInterpolation? Interpolation { get; init; }

    /// <summary>True when the glob matches <paramref name="name"/>.</summary>
    public bool Matches(string name) => NamePatterns.GlobMatches(Pattern, name ?? throw new ArgumentNullException(nameof(name)));

    /// <summary>
    /// Every key of a rule, declared once: its word, how its value is read, and how a later rule's value merges over an
    /// earlier one's (a key the later rule leaves null keeps the earlier value). Adding a key means a property above and
    /// one line here.
    /// </summary>
    private static readonly RuleKey[] RuleKeys =
    [
        new("out-shrink", (r, v, _) => r with { OutShrink = PolicyWords.Parse<OutShrinkRule>(v, "out-shrink") }, (a, b) => b.OutShrink is null ? a : a with { OutShrink = b.OutShrink }),
        new("new-channels", (r, v, _) => r with { NewChannels = PolicyWords.Parse<NewChannelRule>(v, "new-channels") }, (a, b) => b.NewChannels is null ? a : a with { NewChannels = b.NewChannels }),
        new("in-channels", (r, v, _) => r with { InChannels = PolicyWords.Parse<InChannelRule>(v, "in-channels") }, (a, b) => b.InChannels is null ? a : a with { InChannels = b.InChannels }),
        new("kernel", (r, v, _) => r with { Kernel = PolicyWords.Parse<KernelRule>(v, "kernel") }, (a, b) => b.Kernel is null ? a : a with { Kernel = b.Kernel }),
        new("head", (r, v, _) => r with { Head = PolicyWords.Parse<HeadRule>(v, "head") }, (a, b) => b.Head is null ? a : a with { Head = b.Head }),
        new("skip", (r, v, t) => r with { Skip = ParseBool(v, t) }, (a, b) => b.Skip is null ? a : a with { Skip = b.Skip }),
        new("reinit", (r, v, t) => r with { Reinit = ParseBool(v, t) }, (a, b) => b.Reinit is null ? a : a with { Reinit = b.Reinit }),
        new("layout", (r, v, t) => r with { Layout = ParseLayout(v, t) }, (a, b) => b.Layout is null ? a : a with { Layout = b.Layout }),
        new("structural", (r, v, t) => r with { Structural = ParseBool(v, t) }, (a, b) => b.Structural is null ? a : a with { Structural = b.Structural }),
        new("grid", (r, v, t) => r with { Grid = ParseGrid(v, t) }, (a, b) => b.Grid is null ? a : a with { Grid = b.Grid }),
        new("source-grid", (r, v, t) => r with { SourceGrid = ParseGrid(v, t) }, (a, b) => b.SourceGrid is null ? a : a with { SourceGrid = b.SourceGrid }),
        new("prefix", (r, v, t) => r with { PrefixTokens = ParsePrefix(v, t) }, (a, b) => b.PrefixTokens is null ? a : a with { PrefixTokens = b.PrefixTokens }),
        new("interpolation", (r, v, _) => r with { Interpolation = PolicyWords.Parse<PositionInterpolation>(v, "interpolation") }, (a, b) => b.Interpolation is null ? a : a with { Interpolation = b.Interpolation }),
    ];

    /// <summary>The keys <see cref="Parse"/> accepts, in the order help lists them.</summary>
    public static IReadOnlyList<string> Keys { get; } = RuleKeys.Select(k => k.Word).ToArray();

    /// <summary>The words of the keys this rule sets (a merged rule: every key any matching rule set).</summary>
    internal IEnumerable<string> SetKeys()
    {
        var blank = new TensorRule(Pattern);
        return RuleKeys.Where(k => k.Merge(blank, this) != blank).Select(k => k.Word);
    }

    /// <summary>This rule with <paramref name="later"/>'s non-null values over it (its pattern kept): how rules matching one tensor merge.</summary>
    internal TensorRule Then(TensorRule later)
    {
        ArgumentNullException.ThrowIfNull(later);
        var merged = this;
        foreach (var k in RuleKeys)
        {
            merged = k.Merge(merged, later);
        }
        return merged;
    }

    /// <summary>
    /// Parses <c>GLOB:key=value[,key=value…]</c> (the last <c>:</c> splits; a key alone means <c>true</c>), the
    /// spelling of the CLI's <c>--rule</c>: keys are <see cref="Keys"/>, values the policy words of
    /// <see cref="PolicyWords"/>, <c>true</c>/<c>false</c>, or a layout (<c>conv2d</c>, <c>conv2d/GROUPS</c>,
    /// <c>convtranspose2d</c>, <c>linear</c> …).
    /// </summary>
    /// <exception cref="InvalidInputException">The text is not a rule: its message names the text and what is wrong (not the
    /// option that carried it, which the caller adds).</exception>
    public static TensorRule Parse(string text)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            throw new InvalidInputException($"Tensor rule '{text}': expected GLOB:key=value[,key=value…].");
        }
        var rule = new TensorRule(text[..colon]);
        foreach (var part in text[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            var key = kv[0].ToLowerInvariant();
            var value = kv.Length > 1 ? kv[1] : "true";
            var found = Array.Find(RuleKeys, k => k.Word == key)
                ?? throw new InvalidInputException($"Tensor rule '{text}': unknown key '{kv[0]}' ({string.Join(", ", Keys)}).");
            rule = found.Parse(rule, value, text);
        }
        return rule;
    }

    /// <summary>One key of a rule: its word, its parser (rule, value, whole text for messages) and its merge (earlier, later).</summary>
    private sealed record RuleKey(string Word, Func<TensorRule, string, string, TensorRule> Parse, Func<TensorRule, TensorRule, TensorRule> Merge);

    private static int ParsePrefix(string value, string text) =>
        int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n <= 64 ? n
            : throw new InvalidInputException($"Tensor rule '{text}': prefix '{value}' is not a token count (0–64).");

    private static PatchGrid ParseGrid(string value, string text)
    {
        try
        {
            return PatchGrid.Parse(value);
        }
        catch (FormatException e)
        {
            throw new InvalidInputException($"Tensor rule '{text}': {e.Message}", e);
        }
    }

    private static bool ParseBool(string value, string text) =>
        bool.TryParse(value, out var b) ? b : throw new InvalidInputException($"Tensor rule '{text}': '{value}' is not true or false.");

    private static Layout ParseLayout(string value, string text)
    {
        var parts = value.ToLowerInvariant().Split('/');
        int groups = 1;
        if (parts.Length > 2 || (parts.Length == 2 && (!int.TryParse(parts[1], out groups) || groups < 1)))
        {
            throw new InvalidInputException($"Tensor rule '{text}': layout '{value}' should look like conv2d, conv2d/GROUPS, convtranspose2d or linear.");
        }
        return parts[0] switch
        {
            "conv1d" => Graft.Layout.Conv(1, groups),
            "conv2d" => Graft.Layout.Conv(2, groups),
            "conv3d" => Graft.Layout.Conv(3, groups),
            "convtranspose1d" => Graft.Layout.ConvTranspose(1, groups),
            "convtranspose2d" => Graft.Layout.ConvTranspose(2, groups),
            "convtranspose3d" => Graft.Layout.ConvTranspose(3, groups),
            "linear" => Graft.Layout.Linear,
            _ => throw new InvalidInputException($"Tensor rule '{text}': unknown layout '{parts[0]}' (conv1d…3d, convtranspose1d…3d, linear)."),
        };
    }
}
