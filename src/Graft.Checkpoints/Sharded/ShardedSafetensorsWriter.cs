using System.Globalization;
using System.Text;
using System.Text.Json;
using Graft.Checkpoints.Safetensors;

namespace Graft.Checkpoints.Sharded;

/// <summary>
/// Writes sharded safetensors checkpoints the way Hugging Face does: tensors split in order into
/// <c>model-00001-of-0000N.safetensors</c> files, plus <c>model.safetensors.index.json</c>.
/// </summary>
/// <remarks>
/// <para>Every file is written atomically (temporary file, flush, rename), shards first and the index last. A crash
/// midway therefore leaves either no index or the previous one, never an index naming a shard that does not exist.
/// It may leave new shards beside an old index: if the old index names other shard files, it stays valid; if it names
/// the same files (same shard count), <see cref="ShardedSafetensorsReader"/> refuses the mix as
/// <see cref="CheckpointErrorKind.Inconsistent"/> whenever the tensor names differ, but cannot tell two versions of
/// the same tensors apart. Shards of an earlier write with another shard count are left in place, not deleted.</para>
/// <para>Output is deterministic. Each shard carries the metadata <c>{"format": "pt"}</c>, which transformers expects;
/// the index's <c>metadata</c> holds the caller's strings plus <c>total_size</c> (the number of tensor bytes, a JSON
/// number as transformers writes it; a caller's <c>total_size</c> is replaced).</para>
/// </remarks>
public static class ShardedSafetensorsWriter
{
    /// <summary>The ending an index file name must have; what precedes it names the shards.</summary>
    public const string IndexSuffix = ".safetensors.index.json";

    /// <summary>
    /// Writes the tensors into shards of at most <paramref name="maxShardBytes"/> tensor bytes each (a single tensor
    /// larger than that gets a shard of its own), then the index at <paramref name="indexPath"/>.
    /// </summary>
    /// <param name="indexPath">For example <c>out/model.safetensors.index.json</c>; shards are named after its prefix (<c>model</c>).</param>
    /// <param name="payloads">The tensors, in order; shards follow this order.</param>
    /// <param name="metadata">Strings for the index's <c>metadata</c> object.</param>
    /// <param name="maxShardBytes">Largest sum of tensor bytes per shard (headers not counted, as in transformers).</param>
    /// <returns>The shard paths written, in order.</returns>
    /// <exception cref="ArgumentException">The index name does not end in <see cref="IndexSuffix"/>, two tensors share a name, or a string is not valid Unicode.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxShardBytes"/> is not positive.</exception>
    public static IReadOnlyList<string> Write(string indexPath, IEnumerable<TensorPayload> payloads, IReadOnlyDictionary<string, string>? metadata, long maxShardBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(indexPath);
        ArgumentNullException.ThrowIfNull(payloads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        var fileName = Path.GetFileName(indexPath);
        if (!fileName.EndsWith(IndexSuffix, StringComparison.Ordinal) || fileName.Length == IndexSuffix.Length)
        {
            throw new ArgumentException($"{indexPath}: a sharded index must be named '<prefix>{IndexSuffix}' (for example 'model{IndexSuffix}').", nameof(indexPath));
        }
        var prefix = fileName[..^IndexSuffix.Length];
        var folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var list = payloads.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
        {
            if (t is null)
            {
                throw new ArgumentException("The tensor list contains null.", nameof(payloads));
            }
            if (!names.Add(t.Name))
            {
                throw new ArgumentException($"Tensor '{t.Name}' appears more than once; names must be unique across shards.", nameof(payloads));
            }
        }

        var groups = Split(list, maxShardBytes);
        var shardNames = Enumerable.Range(1, groups.Count)
            .Select(i => string.Create(CultureInfo.InvariantCulture, $"{prefix}-{i:D5}-of-{groups.Count:D5}.safetensors"))
            .ToList();
        var shardMetadata = new Dictionary<string, string> { ["format"] = "pt" };
        // Validate every shard header (names, Unicode) before the first file is written.
        foreach (var g in groups)
        {
            _ = SafetensorsWriter.BuildHeader(g, shardMetadata);
        }
        var index = BuildIndex(list, groups, shardNames, metadata);

        var paths = new List<string>();
        for (var i = 0; i < groups.Count; i++)
        {
            var p = Path.Combine(folder, shardNames[i]);
            SafetensorsWriter.Write(p, groups[i], shardMetadata);
            paths.Add(p);
        }
        AtomicFile.Write(indexPath, s => s.Write(index));
        return paths.AsReadOnly();
    }

    private static List<List<TensorPayload>> Split(List<TensorPayload> list, long maxShardBytes)
    {
        var groups = new List<List<TensorPayload>>();
        var current = new List<TensorPayload>();
        long size = 0;
        foreach (var t in list)
        {
            if (current.Count > 0 && size + t.ByteLength > maxShardBytes)
            {
                groups.Add(current);
                current = [];
                size = 0;
            }
            current.Add(t);
            size += t.ByteLength;
        }
        if (current.Count > 0 || groups.Count == 0)
        {
            groups.Add(current);
        }
        return groups;
    }

    private static byte[] BuildIndex(List<TensorPayload> all, List<List<TensorPayload>> groups, List<string> shardNames,
        IReadOnlyDictionary<string, string>? metadata)
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteStartObject("metadata");
            if (metadata is not null)
            {
                foreach (var key in metadata.Keys.Where(k => k != "total_size").Order(StringComparer.Ordinal))
                {
                    w.WriteString(key, metadata[key] ?? throw new ArgumentException($"Metadata value for '{key}' is null.", nameof(metadata)));
                }
            }
            w.WriteNumber("total_size", all.Sum(t => t.ByteLength));
            w.WriteEndObject();
            w.WriteStartObject("weight_map");
            // Sorted by name like transformers writes it, so equal input gives equal bytes.
            var entries = groups.SelectMany((g, i) => g.Select(t => (t.Name, Shard: shardNames[i]))).OrderBy(e => e.Name, StringComparer.Ordinal);
            foreach (var (name, shard) in entries)
            {
                w.WriteString(name, shard);
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        ms.Write("\n"u8);
        return ms.ToArray();
    }
}
