namespace Graft.Checkpoints;

/// <summary>Progress of a conversion: tensors written so far, out of how many, and the one being written.</summary>
/// <param name="Done">Tensors finished.</param>
/// <param name="Total">Tensors in all.</param>
/// <param name="Current">The tensor just written.</param>
public readonly record struct ConvertProgress(int Done, int Total, string Current);

/// <summary>What a conversion wrote (<c>graft convert --json</c> prints it as is).</summary>
/// <param name="Path">The output (for a sharded output, its index).</param>
/// <param name="Format">The output's format name.</param>
/// <param name="Tensors">Tensors written.</param>
/// <param name="Bytes">Tensor bytes written (headers and metadata not counted).</param>
/// <param name="Files">Every file written: the output, or the index first and then its shards.</param>
/// <param name="Source">The input's path.</param>
/// <param name="SourceFormat">The input's format name.</param>
public sealed record ConvertResult(string Path, string Format, int Tensors, long Bytes, IReadOnlyList<string> Files, string Source, string SourceFormat);

public static partial class CheckpointFile
{
    /// <summary>
    /// Writes every tensor of a checkpoint, bit for bit, and its metadata where the output format holds it, to
    /// <paramref name="outputPath"/> in the format <paramref name="format"/> names or else the one the extension names.
    /// Tensors stream from reader to writer one at a time; the output appears atomically or not at all, and never
    /// replaces a file the input reads.
    /// </summary>
    /// <param name="inputPath">The checkpoint to read; its format is detected (<see cref="Open"/>).</param>
    /// <param name="outputPath">Where to write.</param>
    /// <param name="format">The output format's name; null to take it from <paramref name="outputPath"/>'s extension.</param>
    /// <param name="maxShardBytes">For a sharded output, the most tensor bytes per shard (<see cref="Write"/>).</param>
    /// <param name="progress">Told after each tensor is written.</param>
    /// <exception cref="InvalidInputException">The output is a folder, has no format, names a format Graft cannot write
    /// or one that cannot hold a tensor's dtype, or would replace an input file.</exception>
    /// <exception cref="CheckpointFormatException">The input is malformed.</exception>
    public static ConvertResult Convert(string inputPath, string outputPath, string? format = null, long? maxShardBytes = null,
        IProgress<ConvertProgress>? progress = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(inputPath);
        using var reader = Open(inputPath);
        return Convert(reader, outputPath, format, maxShardBytes, progress);
    }

    /// <summary>
    /// <see cref="Convert(string, string, string?, long?, IProgress{ConvertProgress}?)"/> from a checkpoint already open,
    /// for inputs that need more than a path to open (a PyTorch dictionary chosen by key path, an explicit input format).
    /// </summary>
    /// <param name="input">The checkpoint to read; the caller keeps and disposes it.</param>
    /// <param name="outputPath">Where to write.</param>
    /// <param name="format">The output format's name; null to take it from <paramref name="outputPath"/>'s extension.</param>
    /// <param name="maxShardBytes">For a sharded output, the most tensor bytes per shard (<see cref="Write"/>).</param>
    /// <param name="progress">Told after each tensor is written.</param>
    /// <exception cref="InvalidInputException">The output is a folder, has no format, names a format Graft cannot write
    /// or one that cannot hold a tensor's dtype, or would replace an input file.</exception>
    public static ConvertResult Convert(ICheckpointReader input, string outputPath, string? format = null, long? maxShardBytes = null,
        IProgress<ConvertProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentException.ThrowIfNullOrEmpty(outputPath);
        outputPath = System.IO.Path.GetFullPath(outputPath);
        if (Directory.Exists(outputPath))
        {
            throw new InvalidInputException($"{outputPath}: is a folder; give an output file name.");
        }
        return Convert(input, outputPath, OutputFormat(outputPath, format), maxShardBytes, progress);
    }

    /// <summary>
    /// <see cref="Convert(ICheckpointReader, string, string?, long?, IProgress{ConvertProgress}?)"/> into a format already
    /// chosen (<see cref="OutputFormat"/>), so a caller that checked the output's format early does not name it again.
    /// </summary>
    /// <exception cref="InvalidInputException">The output is a folder, the format cannot write, or the output would
    /// replace an input file.</exception>
    public static ConvertResult Convert(ICheckpointReader input, string outputPath, ICheckpointFormat outFormat, long? maxShardBytes,
        IProgress<ConvertProgress>? progress)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentException.ThrowIfNullOrEmpty(outputPath);
        ArgumentNullException.ThrowIfNull(outFormat);
        outputPath = System.IO.Path.GetFullPath(outputPath);
        if (Directory.Exists(outputPath))
        {
            throw new InvalidInputException($"{outputPath}: is a folder; give an output file name.");
        }
        if (!outFormat.CanWrite)
        {
            throw new InvalidInputException($"Graft cannot write the {outFormat.Name} format; write one of {WritableFormatNames()}.");
        }
        var set = OutputSet.CurrentOrNew(out var owned);
        try
        {
            EnsureOutputSparesInputs(outputPath, outFormat, (input, "input"));
            long bytes = input.Tensors.Sum(t => t.ByteLength);
            OutputSpace.Ensure(outputPath, bytes, SharingNote(input));
            int done = 0;
            int total = input.Tensors.Count;
            var payloads = input.Tensors.Select(t => TensorPayload.FromCheckpoint(input, t));
            if (progress is not null)
            {
                payloads = payloads.Select(p => TensorPayload.Observed(p, w => progress.Report(new ConvertProgress(++done, total, w.Name))));
            }
            // The output was checked above (EnsureOutputSparesInputs): the format object writes it, not looked up again.
            var files = outFormat.WriteFiles(outputPath, payloads, input.Metadata, maxShardBytes);
            if (owned)
            {
                set.Commit();
            }
            return new ConvertResult(outputPath, outFormat.Name, total, bytes, files, input.Path, input.Format);
        }
        finally
        {
            if (owned)
            {
                set.Dispose();
            }
        }
    }

    /// <summary>Why a conversion writes more than the input stores, for the space refusal's message; empty when it does not.</summary>
    private static string SharingNote(ICheckpointReader input) =>
        input is PyTorch.PyTorchReader { SharedStorageCount: > 0 } pt
            ? $" ({pt.TensorsOnSharedStorages:N0} of its tensors view {pt.SharedStorageCount:N0} shared storage(s) that {input.Path} stores in {ByteSize.Format(pt.StoredByteLength)}; a conversion writes every tensor in full)"
            : "";

    private static string WritableFormatNames() => string.Join(", ", Formats.Where(f => f.CanWrite).Select(f => f.Name));
}
