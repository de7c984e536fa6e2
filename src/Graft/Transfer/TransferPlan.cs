using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>A complete plan: one entry per target tensor (template order) and the source tensors nothing used.</summary>
/// <param name="SourcePath">Where the source came from.</param>
/// <param name="TemplatePath">Where the template came from.</param>
/// <param name="Targets">Per-target plans, in template order.</param>
/// <param name="UnusedSources">Source tensors no target uses.</param>
/// <param name="Policy">The policy the plan was made with.</param>
public sealed record TransferPlan(string SourcePath, string TemplatePath, IReadOnlyList<TargetPlan> Targets, IReadOnlyList<TensorInfo> UnusedSources, TransferPolicy Policy)
{
    /// <summary>Channel groups taking part in the plan, with their decisions.</summary>
    public IReadOnlyList<PlannedGroup> Groups { get; init; } = [];

    /// <summary>
    /// Things a reader must know that are not a single tensor's fate: largest-norm decisions that fell back to first-n
    /// (and why), structural guesses made.
    /// </summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>
    /// For a plan made by role from two Llama-family <c>config.json</c> files (<see cref="Graft.Transformers.TransformerPlanner"/>):
    /// the architectures and why the function would change; null for a plan made by names.
    /// </summary>
    public Graft.Transformers.TransformerPlan? Transformer { get; init; }

    /// <summary>
    /// Problems <c>--strict</c> refuses, one line each (empty when the transfer is complete). Computed on every read,
    /// and each line only when it is read: a plan of 200,000 kept tensors must not hold 200,000 sentences.
    /// </summary>
    public IReadOnlyList<string> StrictViolations
    {
        get
        {
            bool allowHeads = Policy.StrictAllowsNewHead;
            var targets = new List<int>();
            var headSources = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < Targets.Count; i++)
            {
                var t = Targets[i];
                if (allowHeads && t.NewHead)
                {
                    if (t.Match is not null)
                    {
                        headSources.Add(t.Match.Source);
                    }
                }
                else if (!t.Complete || t.Status == TargetStatus.Cast)
                {
                    targets.Add(i);
                }
            }
            var sources = new List<int>();
            for (int i = 0; i < UnusedSources.Count; i++)
            {
                if (!headSources.Contains(UnusedSources[i].Name))
                {
                    sources.Add(i);
                }
            }
            return new ComputedList<string>(targets.Count + sources.Count, k =>
            {
                if (k < targets.Count)
                {
                    var t = Targets[targets[k]];
                    return $"{t.Target.Name}: {t.Status.ToString().ToLowerInvariant()} ({t.Reason})";
                }
                return $"{UnusedSources[sources[k - targets.Count]].Name}: source tensor not used";
            });
        }
    }

    /// <summary>
    /// Counts by status and by what happened to the source's values, and the verdict: the same numbers the report of this
    /// transfer gives (it takes them from here).
    /// </summary>
    public ReportSummary Summary => TransferAccount.Summarise(this);

    /// <summary>
    /// Why the growth in this plan does not keep the source's function, one line per tensor (empty when it does or nothing
    /// grew): copies nothing rescales, a LayerNorm or RMSNorm or an attention projection widened by zero-padding, a kernel
    /// grown unevenly.
    /// </summary>
    public IReadOnlyList<string> GrowthProblems => TransferAccount.GrowthProblems(Targets);

    /// <summary>
    /// The report this plan's transfer would give, without an output and without what only running it measures (the
    /// channel indices of largest-norm selections): <c>graft plan --json</c> writes it, so a script reads one schema.
    /// </summary>
    public TransferReport Report(ICheckpointReader source, ICheckpointReader template)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(template);
        return TransferReport.FromPlan(this, source, template, output: null, measured: null);
    }
}
