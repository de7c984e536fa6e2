using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transfer;

/// <summary>Progress of a transfer: tensors written so far, out of how many, and the one being written.</summary>
/// <param name="Done">Tensors finished.</param>
/// <param name="Total">Tensors in all.</param>
/// <param name="Current">The tensor being written.</param>
public readonly record struct TransferProgress(int Done, int Total, string Current);

/// <summary>
/// A transfer under way: the plan, the output tensors (produced lazily, in template order) and, once every output has
/// been consumed, the report.
/// </summary>
public sealed class TransferRun
{
    private readonly TransferExecutor _executor;
    private readonly ICheckpointReader _source;
    private readonly ICheckpointReader _template;

    internal TransferRun(TransferPlan plan, ICheckpointReader source, ICheckpointReader template)
    {
        Plan = plan;
        _source = source;
        _template = template;
        _executor = new TransferExecutor(plan, source, template);
        Outputs = _executor.Outputs();
    }

    /// <summary>The plan being carried out.</summary>
    public TransferPlan Plan { get; }

    /// <summary>One payload per target tensor; computing happens when a payload is written.</summary>
    public IReadOnlyList<TensorPayload> Outputs { get; }

    /// <summary>
    /// The report: the plan (every target's status, source, reason and steps) plus what execution measured, the
    /// indices of largest-norm selections, known once a tensor applying them has been written. Its target and source
    /// entries are made from the plan when read (<see cref="ComputedList{T}"/>), so a report of many tensors costs
    /// little more than the plan.
    /// </summary>
    public TransferReport Report(ReportFile? output = null) =>
        TransferReport.FromPlan(Plan, _source, _template, output, _executor.Measured);
}

/// <summary>
/// Weight transfer between architectures: plan (shapes only) → apply (lazily, tensor by tensor) → report.
/// Files, checkpoints and live modules share this one implementation.
/// </summary>
public static class WeightTransfer
{
    /// <summary>
    /// Plans a transfer without reading any tensor data. A transfer that would carry nothing from the source (or only a
    /// classifier head) is refused with <see cref="TransferRefusedException"/>, naming the likely cause and the fix. <paramref name="groups"/> adds dependency information known
    /// otherwise (for example <see cref="ChannelTracer.Trace"/> on the target module) to the policy's declared groups.
    /// </summary>
    public static TransferPlan Plan(ICheckpointReader source, ICheckpointReader template, TransferPolicy? policy = null, ChannelGroups? groups = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(template);
        return PlanWithSource(source, template, policy, groups).Plan;
    }

    /// <summary>
    /// The plan and the source it reads: the checkpoint itself, or, when its layers were paired by the computation
    /// graph, the checkpoint plus the tensors computed for the pairs (folded or identity BatchNorms, transposed weights).
    /// </summary>
    private static (TransferPlan Plan, ICheckpointReader Source) PlanWithSource(ICheckpointReader source, ICheckpointReader template, TransferPolicy? policy, ChannelGroups? groups,
        Func<TargetStructure>? targetStructure = null)
    {
        policy ??= TransferPolicy.Default;
        if (Graft.Transformers.TransformerPlanner.TryPlanWithSource(source, template, policy) is { } byRole)
        {
            // Both sides are Llama-family decoders with a config.json: roles and head structure come from it.
            EmptyTransfer.Check(byRole.Plan, source.Tensors, template.Tensors);
            return byRole;
        }
        if (policy.Transformer is { } options && (options.Layers is not null || options.CloneNoise != 0))
        {
            throw new TransferPlanException("a layer map and clone noise apply to decoders planned by role: put each checkpoint's Hugging Face config.json (a Llama-family model_type) beside it.");
        }
        var matches = NameMatcher.Match(source.Tensors, template.Tensors, policy);
        var effective = source;
        List<string> notes = [];
        bool sourceHasNoHead = false;
        // The target's own graph, read only if names fail: a live module's trace (IntoModule), an ONNX template's graph.
        if (targetStructure is null && template is Graft.Checkpoints.Onnx.OnnxReader onnxTemplate)
        {
            targetStructure = () => new TargetStructure(NetStructure.FromGraph(SourceGraph.Of(onnxTemplate), "the template's ONNX graph"), null);
        }
        if (GraphMatch.TryMatch(source, SourceGraph.Of(source), template.Tensors, policy, matches, targetStructure) is { } byGraph)
        {
            (effective, matches, notes, sourceHasNoHead) = (byGraph.Source, byGraph.Matches, byGraph.Notes, byGraph.SourceHasNoHead);
        }
        var plan = TransferPlanner.Plan(effective.Tensors, template.Tensors, policy, source.Path, template.Path, groups, matches);
        if (sourceHasNoHead && EmptyTransfer.LastLinearLayer(template.Tensors) is { } head)
        {
            // A feature extractor (no classifier in the graph): the template's head is new, as one with another class count.
            plan = plan with
            {
                Targets = plan.Targets.Select(t => t.Layer == head && t.Source is null && t.Cause == TargetCause.NoSource
                    ? t with { NewHead = true, Cause = TargetCause.NewHead, Reason = "classifier head: the source graph has none; the target's own init is kept" }
                    : t).ToList(),
            };
        }
        // Nothing carried over is never a success: refused with the likely cause and the fix.
        EmptyTransfer.Check(plan, source.Tensors, template.Tensors);
        var warnings = EmptyTransfer.Warnings(policy, source.Tensors, template.Tensors);
        if (warnings.Count > 0 || notes.Count > 0)
        {
            plan = plan with { Notes = [.. warnings, .. notes, .. plan.Notes] };
        }
        return (plan, effective);
    }

    /// <summary>
    /// Plans and starts a transfer. Under <see cref="TransferPolicy.Strict"/> it throws
    /// <see cref="TransferStrictException"/> before producing anything when the transfer would be incomplete.
    /// </summary>
    /// <remarks>
    /// <paramref name="refuse"/> lets a caller add its own conditions (for example <c>Graft.Growth.PreserveFunction.Problems</c>):
    /// any line it returns refuses the transfer the same way.
    /// </remarks>
    public static TransferRun Start(ICheckpointReader source, ICheckpointReader template, TransferPolicy? policy = null, ChannelGroups? groups = null,
        Func<TransferPlan, IReadOnlyList<string>>? refuse = null) =>
        Start(source, template, policy, groups, refuse, targetStructure: null);

    private static TransferRun Start(ICheckpointReader source, ICheckpointReader template, TransferPolicy? policy, ChannelGroups? groups,
        Func<TransferPlan, IReadOnlyList<string>>? refuse, Func<TargetStructure>? targetStructure)
    {
        var (plan, effective) = PlanWithSource(source, template, policy, groups, targetStructure);
        if (plan.Policy.Strict && plan.StrictViolations.Count > 0)
        {
            throw new TransferStrictException(plan.StrictViolations);
        }
        if (refuse?.Invoke(plan) is { Count: > 0 } problems)
        {
            throw new TransferStrictException(problems);
        }
        return new TransferRun(plan, effective, template);
    }

    /// <summary>
    /// Transfers a checkpoint file into the architecture of a template file and writes the result atomically to
    /// <paramref name="outputPath"/> (format from <paramref name="outputFormat"/> or its extension, refused when neither names one; an ONNX output is the
    /// ONNX template's graph with its initializers replaced). The source and
    /// template are opened read-only; on any failure nothing is left at the output path. For a sharded output,
    /// <c>maxShardBytes</c> sets the most tensor bytes per shard (default 5 GB, as transformers).
    /// </summary>
    /// <exception cref="InvalidInputException">The output would replace an input's file or is no regular file, its format
    /// is unknown or cannot hold a tensor, an ONNX output has no ONNX template, or a shard size is given for an output
    /// that is not sharded.</exception>
    /// <exception cref="TransferPlanException">A rule or rename cannot be applied (a planned refusal).</exception>
    /// <exception cref="TransferStrictException">The policy is strict, or <paramref name="refuse"/> objects, and the transfer would be incomplete;
    /// or the logits check (<paramref name="logitCheck"/>, for decoders planned by role: <see cref="Graft.Transformers.LogitCheck"/>)
    /// measured that an output claimed to keep the function does not.</exception>
    public static TransferReport Files(string sourcePath, string templatePath, string outputPath, TransferPolicy? policy = null,
        IProgress<TransferProgress>? progress = null, string? outputFormat = null, string? sourceFormat = null, string? templateFormat = null,
        Func<TransferPlan, IReadOnlyList<string>>? refuse = null, long? maxShardBytes = null, Graft.Transformers.LogitCheckMode logitCheck = Graft.Transformers.LogitCheckMode.Auto)
    {
        ArgumentException.ThrowIfNullOrEmpty(sourcePath);
        ArgumentException.ThrowIfNullOrEmpty(templatePath);
        ArgumentException.ThrowIfNullOrEmpty(outputPath);
        // Every file of the output (shards, ONNX data) and the inputs' files join one output set: staged together,
        // committed together, or (on any failure) none of them; a caller's set (the CLI's, with its report) commits them.
        var set = OutputSet.CurrentOrNew(out var owned);
        try
        {
            var report = FilesInto(sourcePath, templatePath, outputPath, policy, progress, outputFormat, sourceFormat, templateFormat, refuse, maxShardBytes, logitCheck);
            if (owned)
            {
                set.Commit();
            }
            return report;
        }
        finally
        {
            if (owned)
            {
                set.Dispose();
            }
        }
    }

    /// <summary>The body of <see cref="Files"/>, inside the ambient output set (its writers stage into it).</summary>
    private static TransferReport FilesInto(string sourcePath, string templatePath, string outputPath, TransferPolicy? policy,
        IProgress<TransferProgress>? progress, string? outputFormat, string? sourceFormat, string? templateFormat,
        Func<TransferPlan, IReadOnlyList<string>>? refuse, long? maxShardBytes, Graft.Transformers.LogitCheckMode logitCheck)
    {
        using var source = CheckpointFile.Open(sourcePath, sourceFormat);
        using var template = CheckpointFile.Open(templatePath, templateFormat);
        // The same rule as convert: the extension names the format, or the caller does; nothing is written under a name
        // that claims another format.
        var format = CheckpointFile.OutputFormat(outputPath, outputFormat, writersOnly: false);
        CheckpointFile.EnsureOutputSparesInputs(outputPath, format, (source, "source"), (template, "template"));
        var run = Start(source, template, policy, refuse: refuse);
        if (format.WritesFromTemplate && template is Graft.Checkpoints.Onnx.OnnxReader onnxTemplate
            && Graft.Checkpoints.Onnx.OnnxWriter.Problems(onnxTemplate, run.Outputs.Select(o => o.Name)) is { Count: > 0 } problems)
        {
            // A weight the template shares between layers gets one value per layer in the output (un-shared); where the
            // graph does not allow that, refuse before anything is written rather than give a layer another's values.
            throw new TransferStrictException(problems);
        }
        OutputSpace.Ensure(outputPath, run.Plan.Targets.Sum(t => t.Target.ByteLength));
        // A decoder planned by role: its logits are measured on the bytes written, before the output set commits.
        var check = Graft.Transformers.LogitCheck.Prepare(run.Plan, source, logitCheck);
        var outputs = check?.Capture(run.Outputs) ?? run.Outputs;
        if (run.Plan.Targets.Any(t => t.Engine == TargetEngine.LibTorch))
        {
            // libtorch loads while the copied tensors stream (writers put computed tensors last where they can). A
            // transfer whose computed tensors all run on managed twins never loads it.
            TensorBridge.WarmUp();
        }
        var metadata = new Dictionary<string, string>(template.Metadata, StringComparer.Ordinal)
        {
            ["graft.transfer.source"] = Path.GetFileName(sourcePath),
            ["graft.transfer.template"] = Path.GetFileName(templatePath),
        };
        try
        {
            if (format.WritesFromTemplate)
            {
                // An ONNX model is a graph with weights: the output is the template's graph with its initializers replaced.
                if (template.Format != format.Name)
                {
                    var kind = format.DisplayName;
                    throw new InvalidInputException($"{outputPath}: {kind} is written into a template of its own format, whose structure it keeps; {templatePath} is {CheckpointFile.GetFormat(template.Format).DisplayName}.");
                }
                format.WriteFromTemplate(templatePath, outputPath, WithProgress(outputs, progress));
            }
            else
            {
                // Checked above (EnsureOutputSparesInputs); the format object writes, not looked up again by name.
                _ = format.WriteFiles(outputPath, WithProgress(outputs, progress), metadata, maxShardBytes);
            }
        }
        catch
        {
            // A write that fails before its first computed tensor (disk full early, a bad output path) must not let the
            // process exit while libtorch is still initialising on the warm-up thread.
            TensorBridge.AfterWarmUp();
            throw;
        }
        var report = run.Report(new ReportFile(outputPath, format.Name, run.Outputs.Count));
        return check is null ? report : report with { Logits = check.Finish() };
    }

    /// <summary>
    /// Transfers the state of a live <paramref name="source"/> module into a live <paramref name="target"/> module of
    /// another shape, in place: the target's current values are the template (its own init).
    /// </summary>
    public static TransferReport Modules(nn.Module source, nn.Module target, TransferPolicy? policy = null) =>
        Modules(source, target, policy, inputShape: null);

    /// <summary>
    /// Like <see cref="Modules(nn.Module, nn.Module, TransferPolicy?)"/>, with channel dependencies traced from a
    /// forward pass of the target on a random input of <paramref name="inputShape"/> (batch first), so that
    /// largest-norm decisions are shared across residual adds and followed by the next layers, through flatten too.
    /// Without an input shape only the policy's declared groups are known; anything else falls back to first-n, reported.
    /// </summary>
    public static TransferReport Modules(nn.Module source, nn.Module target, TransferPolicy? policy, IReadOnlyList<long>? inputShape)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var s = StateDictCheckpoint.FromModule(source, "<source module>");
        return IntoModule(s, target, policy, inputShape);
    }

    /// <summary>
    /// Transfers a checkpoint (any format Graft reads, or a module's state as <see cref="StateDictCheckpoint"/>) into
    /// a live module in place, and returns the report. Nothing is written to the module until every check that can
    /// fail before data moves has passed: names, rename conflicts, strict refusals, shapes and dtypes of every planned
    /// chain, disagreeing channel groups, and the byte ranges of every source tensor (checked when the file is opened).
    /// Then each tensor is written once: plain copies stream from the file straight into the parameter's storage (no
    /// intermediate array), tensors computed with libtorch are made one at a time after them (while they stream,
    /// libtorch's numerics self-check runs on another thread), and tensors kept from the template are not touched. What can still interrupt a load half-way is an I/O error while reading (the
    /// file truncated or a disk failing under the load): the tensors written before it hold the checkpoint's values,
    /// the rest their previous ones, and the exception says which file failed.
    /// </summary>
    /// <param name="source">The source tensors.</param>
    /// <param name="target">The module receiving them; its current values serve as the template's init.</param>
    /// <param name="policy">The policy (default: <see cref="TransferPolicy.Default"/>).</param>
    /// <param name="inputShape">When given, the target is traced on a random input of this shape to find channel groups.</param>
    public static TransferReport IntoModule(ICheckpointReader source, nn.Module target, TransferPolicy? policy = null, IReadOnlyList<long>? inputShape = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        var groups = inputShape is null ? null : ChannelTracer.Trace(target, inputShape, DTypeOf(target));
        using var t = StateDictCheckpoint.FromModule(target, "<target module>");
        // Where names do not match, the target's structure comes from a trace of the module itself (real data-flow edges,
        // residual joins), on inputShape or, without one, a guess from its first layer; if the forward pass fails on the
        // guess, its names and shapes are used and the plan says so.
        TargetStructure Traced()
        {
            var shape = inputShape ?? FlowTracer.GuessInputShape(t.Tensors);
            if (shape is null)
            {
                return new TargetStructure(null, null);
            }
            try
            {
                return new TargetStructure(NetStructure.FromGraph(FlowTracer.Trace(target, shape, t.Tensors, DTypeOf(target)), "a trace of the target module"), null);
            }
            catch (ArgumentException e)
            {
                return new TargetStructure(null, $"the target module could not be traced ({e.Message}); its names and shapes are used");
            }
        }
        var run = Start(source, t, policy, groups, refuse: null, Traced);
        var targets = run.Plan.Targets;
        var outputs = run.Outputs;
        bool libTorch = targets.Any(p => p.Engine == TargetEngine.LibTorch);
        if (libTorch)
        {
            // The numerics guard's self-check (tens of milliseconds cold) runs on the warm-up thread while the copies
            // below stream; the computed tensors come last and find its verdict ready.
            TensorBridge.WarmUp();
        }
        try
        {
            // A kept tensor is the module's own value already. Every other output reads only the source and its own
            // template tensor, and a computed one is made whole before it is written, so writing in place as we go
            // gives the same module as materialising everything first, without a second copy of the checkpoint.
            Write(computedByLibTorch: false);
            if (libTorch)
            {
                Write(computedByLibTorch: true);
            }
        }
        catch
        {
            TensorBridge.AfterWarmUp();
            throw;
        }
        return run.Report(new ReportFile(t.Path, "module", targets.Count));

        void Write(bool computedByLibTorch)
        {
            for (int i = 0; i < targets.Count; i++)
            {
                if (targets[i].Status != TargetStatus.Kept && (targets[i].Engine == TargetEngine.LibTorch) == computedByLibTorch)
                {
                    TensorBridge.CopyInto(outputs[i], t.Tensor(targets[i].Target.Name));
                }
            }
        }
    }

    /// <summary>Opens <paramref name="sourcePath"/> (format detected, or <paramref name="sourceFormat"/>) and transfers it into a live module.</summary>
    public static TransferReport IntoModule(string sourcePath, nn.Module target, TransferPolicy? policy = null, IReadOnlyList<long>? inputShape = null, string? sourceFormat = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(sourcePath);
        using var source = CheckpointFile.Open(sourcePath, sourceFormat);
        return IntoModule(source, target, policy, inputShape);
    }

    private static ScalarType DTypeOf(nn.Module module) =>
        module.parameters().Select(p => p.dtype).FirstOrDefault(d => d is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16, ScalarType.Float32);

    /// <summary>The outputs, reporting each one as the writer finishes it.</summary>
    private static IReadOnlyList<TensorPayload> WithProgress(IReadOnlyList<TensorPayload> outputs, IProgress<TransferProgress>? progress)
    {
        if (progress is null)
        {
            return outputs;
        }
        progress.Report(new TransferProgress(0, outputs.Count, ""));
        int done = 0;
        return ComputedList.Select(outputs, p => TensorPayload.Observed(p, w => progress.Report(new TransferProgress(++done, outputs.Count, w.Name))));
    }
}
