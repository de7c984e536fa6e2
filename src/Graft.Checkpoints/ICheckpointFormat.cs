namespace Graft.Checkpoints;

/// <summary>
/// One checkpoint file format: how to recognise it, open it and (if supported) write it.
/// Formats register in <see cref="CheckpointFile.Formats"/>, and reading, detecting and writing go through them: what
/// differs between formats is asked of the format object (which files a write replaces, whether it takes a shard size,
/// whether it writes only into a template of its own), never decided by testing for one format or by its name.
/// </summary>
public interface ICheckpointFormat
{
    /// <summary>Short name used by <c>--format</c> and in reports (<c>safetensors</c>, <c>pytorch</c> …).</summary>
    string Name { get; }

    /// <summary>The format's name as people write it in a sentence (<c>ONNX</c>, <c>PyTorch</c>); <see cref="Name"/> by default.</summary>
    string DisplayName => Name;

    /// <summary>File name endings this format claims, lower case with the dot (<c>.safetensors</c>).</summary>
    IReadOnlyList<string> Extensions { get; }

    /// <summary>True when this format can write files.</summary>
    bool CanWrite { get; }

    /// <summary>
    /// True when the first bytes of a file (up to 64, fewer for a short file) look like this format.
    /// Used when the extension says nothing; a cheap, conservative check.
    /// </summary>
    bool Sniff(ReadOnlySpan<byte> head);

    /// <summary>Opens and validates a file. Throws <see cref="CheckpointFormatException"/> for a malformed file.</summary>
    ICheckpointReader Open(string path);

    /// <summary>
    /// Opens the dictionary of tensors that <paramref name="key"/> names inside a file holding several (a PyTorch training
    /// checkpoint's <c>model</c>, <c>ema</c>, <c>optimizer</c>); a format holding one dictionary refuses.
    /// </summary>
    /// <exception cref="InvalidInputException">The format holds a single dictionary of tensors.</exception>
    ICheckpointReader Open(string path, string key) =>
        throw new InvalidInputException($"{path}: a key selects one dictionary of a checkpoint holding several; this file is {DisplayName}, which holds one.");

    /// <summary>
    /// Writes tensors (in the given order) and metadata to <paramref name="path"/> atomically: on failure the
    /// destination is untouched. Throws <see cref="NotSupportedException"/> when <see cref="CanWrite"/> is false.
    /// </summary>
    void Write(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null);

    /// <summary>
    /// Every file writing <paramref name="outputPath"/> in this format may replace or delete, as full paths: checked
    /// against every input before anything is written. By default the output alone; a sharded output adds the shards its
    /// previous generation owns, an ONNX output both names of its external data file.
    /// </summary>
    IReadOnlyList<string> FilesReplacedBy(string outputPath) => [Path.GetFullPath(outputPath)];

    /// <summary>
    /// True when the format is written only into a template of the same format, whose structure it keeps (ONNX: the
    /// graph is copied and the initializers replaced), so <see cref="Write"/> cannot make one from tensors alone.
    /// </summary>
    bool WritesFromTemplate => false;

    /// <summary>
    /// Writes <paramref name="tensors"/> into a copy of the template at <paramref name="templatePath"/> (same format),
    /// keeping its structure, to <paramref name="path"/>; for the formats whose <see cref="WritesFromTemplate"/> is true.
    /// </summary>
    /// <exception cref="NotSupportedException">The format writes from tensors alone (<see cref="Write"/>).</exception>
    void WriteFromTemplate(string templatePath, string path, IEnumerable<TensorPayload> tensors) =>
        throw new NotSupportedException($"The {Name} format is written from tensors alone; use Write.");

    /// <summary>
    /// Writes as <see cref="Write"/> does, in files of at most <paramref name="maxShardBytes"/> tensor bytes when the
    /// format is sharded; returns every file written (the output first).
    /// </summary>
    /// <exception cref="InvalidInputException">A shard size is given and the format is not sharded.</exception>
    IReadOnlyList<string> WriteFiles(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata, long? maxShardBytes)
    {
        if (maxShardBytes is not null)
        {
            throw new InvalidInputException($"{path}: a shard size applies to a sharded output (*{Sharded.ShardedSafetensorsWriter.IndexSuffix}); this output is {Name}.");
        }
        Write(path, tensors, metadata);
        return [Path.GetFullPath(path)];
    }
}
