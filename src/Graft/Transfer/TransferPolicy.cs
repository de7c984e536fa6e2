using System.Text.RegularExpressions;
using Graft.Checkpoints;

using Graft.Transforms;

namespace Graft.Transfer;

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

    /// <summary>The rules that apply to <paramref name="name"/>, merged in order (later rules win).</summary>
    internal TensorRule RulesFor(string name)
    {
        var merged = new TensorRule("*");
        foreach (var r in Rules)
        {
            if (r.Matches(name))
            {
                merged = merged.Then(r);
            }
        }
        return merged;
    }

    /// <summary>FNV-1a of the name mixed with <see cref="Seed"/>: reproducible, and different per tensor.</summary>
    internal long SeedFor(string name)
    {
        ulong h = 14695981039346656037UL;
        foreach (var ch in name)
        {
            h = (h ^ ch) * 1099511628211UL;
        }
        return (long)((h ^ (ulong)Seed) & 0x7FFF_FFFF_FFFF_FFFFUL);
    }

    /// <summary>
    /// Options of a transfer planned by role between two decoders with a <c>config.json</c> (a layer map, symmetric noise
    /// on widened copies); null for none. A plan by names refuses them.
    /// </summary>
    public Graft.Transformers.TransformerOptions? Transformer { get; init; }
}
