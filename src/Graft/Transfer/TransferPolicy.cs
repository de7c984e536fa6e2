using System.Text.RegularExpressions;
using Graft.Checkpoints;

using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>What to do when the target has fewer output channels than the source.</summary>
public enum OutShrinkRule
{
    /// <summary>Keep the first n (per group for grouped convolutions). Consistent across layers by construction.</summary>
    First,
    /// <summary>Keep the n channels with the largest L1 norm, in their original order; the layer's bias and BatchNorm follow.</summary>
    LargestL1,
    /// <summary>Keep the n channels with the largest L2 norm, in their original order; the layer's bias and BatchNorm follow.</summary>
    LargestL2,
}

/// <summary>Where new output channels (target larger than source) come from.</summary>
public enum NewChannelRule
{
    /// <summary>The target's own initialisation, read from the template.</summary>
    Template,
    /// <summary>Zeros (BatchNorm running variance 1).</summary>
    Zeros,
    /// <summary>Kaiming-normal (fan_out, ReLU); biases zero.</summary>
    KaimingNormal,
    /// <summary>Cyclic copies of the source channels.</summary>
    Copies,
}

/// <summary>How input channels are adapted.</summary>
public enum InChannelRule
{
    /// <summary>
    /// The default table: a stem (the first convolution, source inputs ≤ 4) → 1 sums, → more repeats and rescales; an interior layer keeps
    /// the first inputs when shrinking and gives new inputs zero weights when growing.
    /// </summary>
    Auto,
    /// <summary>Sum source inputs (folded modulo the target count).</summary>
    Sum,
    /// <summary>Average source inputs (folded modulo the target count).</summary>
    Mean,
    /// <summary>Repeat cyclically and multiply by source/target.</summary>
    RepeatRescale,
    /// <summary>Keep the first inputs.</summary>
    Truncate,
    /// <summary>Keep the source inputs, zero weights for the new ones.</summary>
    ZeroExtend,
}

/// <summary>How kernels of another size are adapted.</summary>
public enum KernelRule
{
    /// <summary>Centred zero-pad (larger) or centred crop (smaller).</summary>
    Fit,
    /// <summary>Bilinear (linear per axis) resampling.</summary>
    Bilinear,
    /// <summary>Bicubic resampling (2-D kernels).</summary>
    Bicubic,
    /// <summary>FlexiViT pseudo-inverse resize.</summary>
    PIResize,
    /// <summary>Reinitialise the whole weight (Kaiming-normal, fan_out, ReLU); the bias keeps the template's init.</summary>
    Reinit,
}

/// <summary>What to do with a classifier head whose class count differs.</summary>
public enum HeadRule
{
    /// <summary>Keep the target's own init for the head's weight and bias.</summary>
    Template,
    /// <summary>Keep the first classes (the rest from the template), like any other out-channel change.</summary>
    KeepFirst,
}

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
        new("out-shrink", (r, v, _) => r with { OutShrink = PolicyWords.Parse<OutShrinkRule>(v, "out-shrink") }, (a, b) => a with { OutShrink = b.OutShrink ?? a.OutShrink }),
        new("new-channels", (r, v, _) => r with { NewChannels = PolicyWords.Parse<NewChannelRule>(v, "new-channels") }, (a, b) => a with { NewChannels = b.NewChannels ?? a.NewChannels }),
        new("in-channels", (r, v, _) => r with { InChannels = PolicyWords.Parse<InChannelRule>(v, "in-channels") }, (a, b) => a with { InChannels = b.InChannels ?? a.InChannels }),
        new("kernel", (r, v, _) => r with { Kernel = PolicyWords.Parse<KernelRule>(v, "kernel") }, (a, b) => a with { Kernel = b.Kernel ?? a.Kernel }),
        new("head", (r, v, _) => r with { Head = PolicyWords.Parse<HeadRule>(v, "head") }, (a, b) => a with { Head = b.Head ?? a.Head }),
        new("skip", (r, v, t) => r with { Skip = ParseBool(v, t) }, (a, b) => a with { Skip = b.Skip ?? a.Skip }),
        new("reinit", (r, v, t) => r with { Reinit = ParseBool(v, t) }, (a, b) => a with { Reinit = b.Reinit ?? a.Reinit }),
        new("layout", (r, v, t) => r with { Layout = ParseLayout(v, t) }, (a, b) => a with { Layout = b.Layout ?? a.Layout }),
        new("structural", (r, v, t) => r with { Structural = ParseBool(v, t) }, (a, b) => a with { Structural = b.Structural ?? a.Structural }),
        new("grid", (r, v, t) => r with { Grid = ParseGrid(v, t) }, (a, b) => a with { Grid = b.Grid ?? a.Grid }),
        new("source-grid", (r, v, t) => r with { SourceGrid = ParseGrid(v, t) }, (a, b) => a with { SourceGrid = b.SourceGrid ?? a.SourceGrid }),
        new("prefix", (r, v, t) => r with { PrefixTokens = ParsePrefix(v, t) }, (a, b) => a with { PrefixTokens = b.PrefixTokens ?? a.PrefixTokens }),
        new("interpolation", (r, v, _) => r with { Interpolation = PolicyWords.Parse<PositionInterpolation>(v, "interpolation") }, (a, b) => a with { Interpolation = b.Interpolation ?? a.Interpolation }),
    ];

    /// <summary>The keys <see cref="Parse"/> accepts, in the order help lists them.</summary>
    public static IReadOnlyList<string> Keys { get; } = RuleKeys.Select(k => k.Word).ToArray();

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

/// <summary>
/// The words of policy rules, as the CLI and the JSON report spell them: the kebab-case enum names
/// (<c>largest-l2</c>, <c>repeat-rescale</c>), plus <c>kaiming</c> for <see cref="NewChannelRule.KaimingNormal"/>.
/// </summary>
public static class PolicyWords
{
    /// <summary>The word for <paramref name="value"/> (what the JSON report writes).</summary>
    public static string Word<T>(T value) where T : struct, Enum =>
        System.Text.Json.JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    /// <summary>Reads a policy word, case-insensitively.</summary>
    /// <param name="text">The word.</param>
    /// <param name="what">Names the option or key in the error message.</param>
    /// <exception cref="InvalidInputException">Not one of the words; the message lists them.</exception>
    public static T Parse<T>(string text, string what) where T : struct, Enum
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var v in Enum.GetValues<T>())
        {
            if (string.Equals(Word(v), text, StringComparison.OrdinalIgnoreCase) || (text == "kaiming" && v.ToString() == "KaimingNormal"))
            {
                return v;
            }
        }
        throw new InvalidInputException($"{what}: '{text}' is not one of {string.Join(", ", Enum.GetValues<T>().Select(Word))}.");
    }
}

/// <summary>
/// The decisions transfer makes for each kind of mismatch. The defaults are DESIGN.md's policy table; every decision
/// lands in the report with its reason.
/// </summary>
public sealed record TransferPolicy
{
    /// <summary>The default policy.</summary>
    public static TransferPolicy Default { get; } = new();

    /// <summary>Target has fewer out channels.</summary>
    public OutShrinkRule OutShrink { get; init; } = OutShrinkRule.First;

    /// <summary>Target has more out channels.</summary>
    public NewChannelRule NewChannels { get; init; } = NewChannelRule.Template;

    /// <summary>In-channel counts differ.</summary>
    public InChannelRule InChannels { get; init; } = InChannelRule.Auto;

    /// <summary>Kernel sizes differ.</summary>
    public KernelRule Kernel { get; init; } = KernelRule.Fit;

    /// <summary>A classifier head has another class count.</summary>
    public HeadRule Head { get; init; } = HeadRule.Template;

    /// <summary>The template's first convolution is a stem (image channels) when its source has at most this many inputs.</summary>
    public int StemMaxInputs { get; init; } = 4;

    /// <summary>
    /// Regex on target weight names marking classifier heads; besides, the last Linear weight of the template is a head
    /// when its out count differs.
    /// </summary>
    public string HeadPattern { get; init; } = @"(^|\.)(fc|classifier|head|heads|logits|last_linear|predictions)(\.\d+)?\.weight$";

    /// <summary>Fail (before writing anything) unless every target tensor is fully carried over and every source used.</summary>
    public bool Strict { get; init; }

    /// <summary>Seed for random initialisation (Kaiming); each tensor derives its own stream from it and its name.</summary>
    public long Seed { get; init; }

    /// <summary>Per-tensor overrides, in order; later rules win.</summary>
    public IReadOnlyList<TensorRule> Rules { get; init; } = [];

    /// <summary>Strip these prefixes from names on both sides before matching (DataParallel, torch.compile).</summary>
    public IReadOnlyList<string> StrippedPrefixes { get; init; } = ["module.", "_orig_mod.", "model."];

    /// <summary>
    /// Source renames (regex → replacement), tried in order before any other matching, for architectures whose layers
    /// were renamed. A rule producing a name the template lacks, or two sources renamed to one target, fails the plan.
    /// </summary>
    public IReadOnlyList<RenameRule> Renames { get; init; } = [];

    /// <summary>
    /// Pair what names cannot by position and role (layer signatures). Off by default because a guess can be wrong:
    /// each guessed pair is reported as <c>structural</c>, and a <see cref="TensorRule.Structural"/> rule refuses it.
    /// </summary>
    public bool StructuralMatching { get; init; }

    /// <summary>
    /// Declared channel dependency groups (target layer names). When a decision is not first-n, producers of a group
    /// share it and consumers follow it; layers whose dependencies are neither declared nor traced fall back to first-n.
    /// </summary>
    public IReadOnlyList<ChannelGroup> Groups { get; init; } = [];

    /// <summary>Stem (first convolution) going to more inputs than its source has: timm repeats and rescales.</summary>
    public InChannelRule StemGrow { get; init; } = InChannelRule.RepeatRescale;

    /// <summary>
    /// The target model's image size in pixels (rows × columns), for vision transformers: with the patch size read from
    /// the template's patch embedding, it gives the target's position grid (12×16 for 192×256 images and 16-pixel
    /// patches) where the token count alone cannot (a non-square grid).
    /// </summary>
    public PatchGrid? ImageSize { get; init; }

    /// <summary>
    /// Under <see cref="Strict"/>, tolerate a classifier head kept from the template because its class count differs
    /// (and its unused source tensors), as timm's <c>load_pretrained</c> does when it drops a head.
    /// </summary>
    public bool StrictAllowsNewHead { get; init; }
}

/// <summary>
/// Named policies for common intentions, so that the CLI's <c>--preset</c> and library users mean the same thing.
/// </summary>
public static class TransferPresets
{
    /// <summary>DESIGN.md's default table.</summary>
    public static TransferPolicy Default => TransferPolicy.Default;

    /// <summary>
    /// Behaves like timm's <c>load_pretrained</c>: the stem's input channels adapted as <c>adapt_input_conv</c> does
    /// (sum to 1 channel, repeat cyclically and rescale by source/target to more), a classifier head with another class
    /// count dropped (the target keeps its own init), and every other mismatch refused (strict). Unlike timm, a stem
    /// shrinking to 2 channels keeps the first 2 without timm's 3/2 rescale.
    /// </summary>
    public static TransferPolicy TimmLoadPretrained { get; } = TransferPolicy.Default with
    {
        Strict = true,
        StrictAllowsNewHead = true,
        InChannels = InChannelRule.Auto,
        StemGrow = InChannelRule.RepeatRescale,
        Head = HeadRule.Template,
    };

    /// <summary>
    /// Keeps the source network's function wherever the target's shape allows it (what <c>--preserve-function</c> and
    /// <c>Graft.Growth.PreserveFunction</c> use): new out channels start from the target's own init, and every consumer
    /// gives new inputs (the stem's too) zero weights, so new units are invisible downstream yet still receive gradients
    /// and train (zero-initialised outgoing weights); kernels are centred-padded; shrinking keeps the first channels so
    /// that consumers follow without dependency information; a head with more classes keeps the old logits.
    /// </summary>
    public static TransferPolicy KeepFunction { get; } = TransferPolicy.Default with
    {
        NewChannels = NewChannelRule.Template,
        InChannels = InChannelRule.Auto,
        StemGrow = InChannelRule.ZeroExtend,
        Kernel = KernelRule.Fit,
        OutShrink = OutShrinkRule.First,
        Head = HeadRule.KeepFirst,
    };

    /// <summary>The preset names <see cref="Get"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["default", "timm", "keep-function"];

    /// <summary>A preset by name (case-insensitive; <c>timm-load-pretrained</c> and <c>keep_function</c> spellings too).</summary>
    /// <exception cref="InvalidInputException">No preset of that name; the message lists the names.</exception>
    public static TransferPolicy Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant().Replace('_', '-') switch
        {
            "default" => Default,
            "timm" or "timm-load-pretrained" => TimmLoadPretrained,
            "keep-function" or "function" or "preserve-function" => KeepFunction,
            _ => throw new InvalidInputException($"Unknown preset '{name}'; known: {string.Join(", ", Names)}."),
        };
    }
}
