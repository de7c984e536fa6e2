using System.Text.Json;
using Graft.Checkpoints;
using System.Text.Json.Serialization;

namespace Graft.Transfer;

/// <summary>What a transfer means for the target model, in the words a user acts on.</summary>
public enum TransferVerdict
{
    /// <summary>Every target tensor got its values from the source (copied, cast or adapted) and no source value was left behind.</summary>
    Complete,
    /// <summary>
    /// Every target tensor came from the source except a classifier head with another class count, which keeps the
    /// template's init: the ordinary fine-tuning transfer, and what timm's <c>load_pretrained</c> does.
    /// </summary>
    CompleteApartFromNewHead,
    /// <summary>
    /// Every target tensor came from the source except those a rule reinitialised or skipped (<c>--reinit</c>,
    /// <c>--skip</c>), and perhaps a new head: what was asked for.
    /// </summary>
    CompleteApartFromRequested,
    /// <summary>
    /// Every source value was carried over into a larger network: some tensors gained channels, inputs or kernel taps
    /// from init or zeros. <see cref="ReportSummary.GrowthKeepsFunction"/> says whether the source's function is kept.
    /// </summary>
    Grown,
    /// <summary>Every target tensor was carried over, but part of the source's values were left behind (a narrower network, unused tensors).</summary>
    Partial,
    /// <summary>Some target tensors other than a new head were not carried over, and no rule asked for that.</summary>
    Incomplete,
}
