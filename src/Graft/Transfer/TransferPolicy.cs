using System.Text.RegularExpressions;

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

    /// <summary>True when the glob matches <paramref name="name"/>.</summary>
    public bool Matches(string name) => NamePatterns.GlobMatches(Pattern, name ?? throw new ArgumentNullException(nameof(name)));
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
    /// <exception cref="ArgumentException">No preset of that name; the message lists the names.</exception>
    public static TransferPolicy Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant().Replace('_', '-') switch
        {
            "default" => Default,
            "timm" or "timm-load-pretrained" => TimmLoadPretrained,
            "keep-function" or "function" or "preserve-function" => KeepFunction,
            _ => throw new ArgumentException($"Unknown preset '{name}'; known: {string.Join(", ", Names)}.", nameof(name)),
        };
    }
}
