using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>What happens to one target tensor.</summary>
public enum TargetStatus
{
    /// <summary>Same shape and dtype: bytes copied.</summary>
    Copied,
    /// <summary>Same shape, other dtype: values cast.</summary>
    Cast,
    /// <summary>Shapes differ: transformed from the source.</summary>
    Adapted,
    /// <summary>Freshly initialised (on request or because nothing could be carried over sensibly); <c>reinitialised</c> in JSON and tables.</summary>
    [JsonStringEnumMemberName("reinitialised")]
    Reinitialized,
    /// <summary>Not transferred: the template's value is kept.</summary>
    Kept,
}

/// <summary>What produces a target's values when the transfer runs.</summary>
public enum TargetEngine
{
    /// <summary>Nothing computes: the bytes stream from the source (a copy) or the template (a kept tensor).</summary>
    Bytes,
    /// <summary>Managed twins of every step and the cast (<see cref="WeightTransform.HasTwin"/>): libtorch is not loaded.</summary>
    Managed,
    /// <summary>TorchSharp (libtorch), the definition of every transform.</summary>
    LibTorch,
}

/// <summary>The input-channel step of a recipe.</summary>
/// <param name="Rule">The rule applied (never Auto).</param>
/// <param name="SourceCount">Source size of the in axis.</param>
/// <param name="TargetCount">Target size of the in axis.</param>
public sealed record InStep(InChannelRule Rule, long SourceCount, long TargetCount)
{
    /// <summary>
    /// The producers' decision this layer's inputs follow (same indices, new inputs zero), or null for a rule of its own.
    /// </summary>
    public OutDecision? Follows { get; init; }

    /// <summary>Input features per followed channel (H·W after a flatten; 1 otherwise).</summary>
    public long BlockSize { get; init; } = 1;
}

/// <summary>A source weight whose channel norms take part in a largest-norm ranking.</summary>
/// <param name="Name">Source tensor name.</param>
/// <param name="Layout">Its layout.</param>
public sealed record NormWeight(string Name, Layout Layout);

/// <summary>The kernel step of a recipe.</summary>
/// <param name="Rule">The rule applied (never Reinit; that is a status).</param>
/// <param name="TargetSize">The target kernel size.</param>
public sealed record KernelStep(KernelRule Rule, IReadOnlyList<long> TargetSize);

/// <summary>
/// The out-channel decision of one layer: every tensor of the layer (weight, bias, BatchNorm vectors) applies the same
/// map to its out axis.
/// </summary>
/// <param name="Layer">The layer (name prefix) the decision belongs to.</param>
/// <param name="Shrink">How to choose survivors when shrinking.</param>
/// <param name="NewChannels">How to fill new channels.</param>
/// <param name="SourceCount">Source out-axis size.</param>
/// <param name="TargetCount">Target out-axis size.</param>
/// <param name="Groups">Groups for grouped convolutions (first-n per group).</param>
public sealed record OutDecision(string Layer, OutShrinkRule Shrink, NewChannelRule NewChannels, long SourceCount, long TargetCount, int Groups)
{
    /// <summary>
    /// The channel dependency group sharing this decision (its key), or null for a decision of one layer. Producers
    /// joined by a residual add must choose the same channels, so the group is what is cached and ranked. (Not
    /// <see cref="Groups"/>, a grouped convolution's group count.)
    /// </summary>
    [JsonPropertyName("group")]
    public string? DependencyGroup { get; init; }

    /// <summary>
    /// For a largest-norm decision: the source weights whose channel scores rank the channels, summed (one for a
    /// single layer, every producer for a group joined by residual adds).
    /// </summary>
    public IReadOnlyList<NormWeight> NormSources { get; init; } = [];

    /// <summary>
    /// How the decision's channel map is made: cyclic copies when growing by copies, a largest-norm ranking when
    /// shrinking by norm (the one kind whose indices need the source's values), else the first channels.
    /// </summary>
    [JsonIgnore]
    public ChannelMapKind MapKind =>
        TargetCount > SourceCount && NewChannels == NewChannelRule.Copies ? ChannelMapKind.Cyclic
        : Shrink != OutShrinkRule.First && NormSources.Count > 0 ? (Shrink == OutShrinkRule.LargestL1 ? ChannelMapKind.LargestL1 : ChannelMapKind.LargestL2)
        : ChannelMapKind.First;
}

/// <summary>Why a target does not simply come from its source; what the planner's control flow (and a caller's) tests.</summary>
public enum TargetCause
{
    /// <summary>The target comes from its source (copied, cast or adapted).</summary>
    Transferred,
    /// <summary>No source tensor was paired with the target.</summary>
    NoSource,
    /// <summary>A rule skips the tensor (or its layer).</summary>
    Skipped,
    /// <summary>A rule, or the kernel rule <c>reinit</c>, reinitialises the weight.</summary>
    Reinitialized,
    /// <summary>A classifier head with another class count keeps the template's init.</summary>
    NewHead,
    /// <summary>Source and target differ in a way no transform carries (rank, a tensor without channel roles).</summary>
    Incompatible,
    /// <summary>The values cannot be computed on: a dtype TorchSharp cannot hold, and no bytes-only copy.</summary>
    NotComputable,
    /// <summary>The tensor's layer weight was not transferred, so the tensor keeps the template's value too.</summary>
    LayerNotTransferred,

    /// <summary>
    /// A buffer the new model computes for its own geometry (a relative position index for another window): the
    /// template's value is the right one, so keeping it is complete.
    /// </summary>
    TemplateBuffer,
}

/// <summary>The plan for one target tensor; checked against shapes before any data moves.</summary>
public sealed record TargetPlan
{
    /// <summary>The target tensor.</summary>
    public required TensorInfo Target { get; init; }

    /// <summary>The source tensor it comes from, if any.</summary>
    public TensorInfo? Source { get; init; }

    /// <summary>What happens.</summary>
    public required TargetStatus Status { get; init; }

    /// <summary>Why, in a sentence.</summary>
    public required string Reason { get; init; }

    /// <summary>The layout the tensor was read with.</summary>
    public required Layout Layout { get; init; }

    /// <summary>The layer (name prefix) the tensor belongs to.</summary>
    public required string Layer { get; init; }

    /// <summary>Input-channel step, if any.</summary>
    public InStep? In { get; init; }

    /// <summary>Kernel step, if any.</summary>
    public KernelStep? Kernel { get; init; }

    /// <summary>Out-channel decision followed, if any.</summary>
    public OutDecision? Out { get; init; }

    /// <summary>
    /// The program for this tensor: the transform chain from the source's values to the target's (computed in float32,
    /// or float64 for a float64 source, then cast to the target's dtype). Identity for copies, casts and kept tensors;
    /// a reinitialisation ignores its input. Checked against the target's shape when planned.
    /// </summary>
    public WeightTransform Transform { get; init; } = WeightTransform.Identity;

    /// <summary>
    /// What computes the target: nothing for copies and kept tensors; managed twins when the source and target are
    /// floating-point dtypes twins hold (f16, bf16, f32, f64) and every step of <see cref="Transform"/> has a twin (a
    /// transfer needs no gradient); libtorch otherwise.
    /// </summary>
    public TargetEngine Engine => Status is TargetStatus.Copied or TargetStatus.Kept ? TargetEngine.Bytes
        : Source is not null && Twins.Holds(Source.DType) && Twins.Holds(Target.DType) && Transform.HasTwin ? TargetEngine.Managed
        : TargetEngine.LibTorch;

    /// <summary>Why the target is or is not carried over (<see cref="Reason"/> says it in a sentence).</summary>
    public TargetCause Cause { get; init; }

    /// <summary>
    /// What the target tensor is in its network (a conv weight, a BatchNorm's running variance, the head's bias …),
    /// assigned once before planning; the planner decides by it.
    /// </summary>
    public TensorRole Role { get; init; }

    /// <summary>The steps as reports list them: a cast for a cast, else each step of <see cref="Transform"/>.</summary>
    public IReadOnlyList<ReportStep> Steps => Status == TargetStatus.Cast
        ? [new ReportStep("cast", $"{Source!.DType}→{Target.DType}")]
        : Chain.StepsOf(Transform).Select(s => new ReportStep(s.Op, s.Describe())).ToList();

    /// <summary>
    /// True when every value of the target comes from the source (copies, casts, adaptations that add nothing but
    /// zeros on new inputs). What <c>--strict</c> requires.
    /// </summary>
    public bool Complete { get; init; }

    /// <summary>How the target was paired with a source (even when the source was then not used), or null.</summary>
    public NameMatch? Match { get; init; }

    /// <summary>A classifier head with another class count kept from the template (timm drops such heads).</summary>
    public bool NewHead { get; init; }

    /// <summary>
    /// A classifier head with another class count (or a member of its layer), whatever the policy did with it: kept
    /// from the template (<see cref="NewHead"/>) or its first classes kept. Such a head cannot keep the source's logits.
    /// </summary>
    public bool Head { get; init; }
}

/// <summary>A channel group as planned: who shares the decision, who follows, and what was decided.</summary>
/// <param name="Key">The group's key (producers joined by <c>+</c>).</param>
/// <param name="Producers">Producer layers.</param>
/// <param name="Consumers">Consumer layers (with block sizes after a flatten).</param>
/// <param name="Origin">Declared or traced.</param>
/// <param name="Decision">The shared decision, or null when the channel count does not change.</param>
public sealed record PlannedGroup(string Key, IReadOnlyList<string> Producers, IReadOnlyList<ChannelConsumer> Consumers, ChannelGroupOrigin Origin, OutDecision? Decision);

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

/// <summary>A caller asked for something a plan cannot do (a rule that does not fit a tensor, say).</summary>
public sealed class TransferPlanException(string message) : Exception(message);

/// <summary>
/// Strict mode found tensors that are not fully transferred, or a promise such as <c>--preserve-function</c> cannot be
/// kept; nothing was written.
/// </summary>
/// <param name="violations">One line per problem.</param>
/// <param name="headline">What was refused, for the message (default: <c>--strict</c>'s).</param>
public sealed class TransferStrictException(IReadOnlyList<string> violations, string? headline = null)
    : Exception((headline ?? $"--strict: {violations.Count} tensor(s) not fully transferred") + ": " + string.Join("; ", violations.Take(10)) + (violations.Count > 10 ? "; …" : ""))
{
    /// <summary>Each violation, one line.</summary>
    public IReadOnlyList<string> Violations { get; } = violations;
}
