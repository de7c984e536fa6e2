using System.Text.RegularExpressions;
using Graft.Checkpoints;

using Graft.Transforms;

namespace Graft.Transfer;

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
