namespace Graft.Checkpoints.Sharded;

/// <summary>
/// Sharded safetensors (Hugging Face): a <c>*.safetensors.index.json</c> file naming the shard holding each tensor.
/// The registry entry through which <see cref="CheckpointFile"/> reaches <see cref="ShardedSafetensorsReader"/> and
/// <see cref="ShardedSafetensorsWriter"/>.
/// </summary>
public sealed class ShardedSafetensorsFormat : ICheckpointFormat
{
    internal const string FormatName = "safetensors-sharded";

    /// <summary>Five gigabytes (decimal), transformers' default <c>max_shard_size</c>.</summary>
    public const long HuggingFaceShardBytes = 5_000_000_000;

    private ShardedSafetensorsFormat()
    {
    }

    /// <summary>The one instance.</summary>
    public static ShardedSafetensorsFormat Instance { get; } = new();

    /// <summary>
    /// Shard size <see cref="Write"/> uses, since <see cref="ICheckpointFormat.Write"/> has no place for one; defaults to
    /// <see cref="HuggingFaceShardBytes"/>. Process-wide: callers who need a size per call use
    /// <see cref="ShardedSafetensorsWriter.Write"/> directly.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not positive.</exception>
    public static long DefaultMaxShardBytes
    {
        get => Interlocked.Read(ref s_defaultMaxShardBytes);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            Interlocked.Exchange(ref s_defaultMaxShardBytes, value);
        }
    }

    private static long s_defaultMaxShardBytes = HuggingFaceShardBytes;

    /// <inheritdoc/>
    public string Name => FormatName;

    /// <inheritdoc/>
    public IReadOnlyList<string> Extensions { get; } = [ShardedSafetensorsWriter.IndexSuffix];

    /// <inheritdoc/>
    public bool CanWrite => true;

    /// <summary>
    /// Always false: an index is ordinary JSON, indistinguishable by its first bytes from any other JSON file, so only
    /// its name (<c>*.safetensors.index.json</c>) or an explicit format selects it.
    /// </summary>
    public bool Sniff(ReadOnlySpan<byte> head) => false;

    /// <inheritdoc/>
    public ICheckpointReader Open(string path) => ShardedSafetensorsReader.Open(path);

    /// <summary>Writes shards of at most <see cref="DefaultMaxShardBytes"/> and the index at <paramref name="path"/>.</summary>
    public void Write(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        ShardedSafetensorsWriter.Write(path, tensors, metadata, DefaultMaxShardBytes);

    /// <summary>The index and the shards its previous generation owns (<see cref="ShardedSafetensorsWriter.FilesReplacedBy"/>).</summary>
    public IReadOnlyList<string> FilesReplacedBy(string outputPath) => ShardedSafetensorsWriter.FilesReplacedBy(outputPath);

    /// <summary>Writes shards of at most <paramref name="maxShardBytes"/> (default <see cref="DefaultMaxShardBytes"/>) and the index; returns the index and the shards.</summary>
    public IReadOnlyList<string> WriteFiles(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata, long? maxShardBytes) =>
        [Path.GetFullPath(path), .. ShardedSafetensorsWriter.Write(path, tensors, metadata, maxShardBytes ?? DefaultMaxShardBytes)];
}
