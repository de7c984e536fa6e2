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
/// <para>Rewriting a sharded checkpoint is crash-safe, and a writer owns only its own generation. Every file is staged in
/// the command's <see cref="OutputSet"/> (temporary files beside their destinations) and renamed into place shards
/// first, index last: the index rename is the commit. New shards never take an existing file's name, nor a name the
/// existing index or any other <c>*.safetensors.index.json</c> in the folder names: the Hugging Face names
/// (<c>model-00001-of-00003.safetensors</c>) when free, else the same with the first free suffix <c>-b</c>…<c>-z</c>
/// (so two generations alternate). After the commit the writer deletes only shards that its own previous index named
/// (under this writer's naming) and that no other index in the folder names: never another checkpoint's shards, never
/// a user's file that merely has a shard's name. A crash before the commit leaves the previous checkpoint intact beside
/// temporaries (removed by a later run once the crashed process is gone, <see cref="OutputSet"/>); a crash during the
/// renames leaves the previous checkpoint beside unnamed new shards. A lock file beside the index
/// (<see cref="OutputSet.Lock"/>) makes a second concurrent writer of the same index fail cleanly instead of
/// interleaving two generations.</para>
/// <para>Output is deterministic for a given previous state. Each shard carries the metadata <c>{"format": "pt"}</c>,
/// which transformers expects; the index's <c>metadata</c> holds the caller's strings plus <c>total_size</c> (the number
/// of tensor bytes, a JSON number as transformers writes it; a caller's <c>total_size</c> is replaced).</para>
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
    /// <exception cref="InvalidInputException">The index name does not end in <see cref="IndexSuffix"/>.</exception>
    /// <exception cref="ArgumentException">Two tensors share a name, or a string is not valid Unicode.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxShardBytes"/> is not positive.</exception>
    public static IReadOnlyList<string> Write(string indexPath, IEnumerable<TensorPayload> payloads, IReadOnlyDictionary<string, string>? metadata, long maxShardBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(indexPath);
        ArgumentNullException.ThrowIfNull(payloads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        // Before the existing index is read: a FIFO or device there must be refused, not opened.
        AtomicFile.EnsureReplaceable(indexPath);
        var fileName = Path.GetFileName(indexPath);
        if (!fileName.EndsWith(IndexSuffix, StringComparison.Ordinal) || fileName.Length == IndexSuffix.Length)
        {
            throw new InvalidInputException($"{indexPath}: a sharded index must be named '<prefix>{IndexSuffix}' (for example 'model{IndexSuffix}').");
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
        var shardMetadata = new Dictionary<string, string> { ["format"] = "pt" };
        // Validate every shard header (names, Unicode) before the first file is written.
        foreach (var g in groups)
        {
            _ = SafetensorsWriter.BuildHeader(g, shardMetadata);
        }

        var set = OutputSet.CurrentOrNew(out var owned);
        try
        {
            // One writer per index at a time: two interleaved generations would delete each other's shards.
            set.Lock(indexPath);
            set.AddOutput(indexPath, "output");
            var previous = PreviousShards(indexPath, prefix);
            var others = ShardsOfOtherIndexes(folder, fileName);
            var shardNames = ChooseShardNames(folder, prefix, groups.Count, previous, others);
            var index = BuildIndex(list, groups, shardNames, metadata);
            var paths = shardNames.Select(n => Path.Combine(folder, n)).ToList();
            foreach (var p in paths)
            {
                set.AddOutput(p, "output");
            }
            // What the previous generation owned and nothing else names: deleted once the new index is in place.
            foreach (var stale in previous.Where(n => !others.Contains(n) && !shardNames.Contains(n)))
            {
                set.DeleteOnCommit(Path.Combine(folder, stale), "output");
            }
            // One shard after the other: writing two at once was measured slower on this project's machines (2 GB
            // sharded convert, interleaved runs: median 2.08 s in parallel, 1.85 s in sequence), and it keeps at most one
            // transformed tensor in memory. Shards are staged before the index, so they are renamed into place first and
            // the index rename is the commit.
            for (var i = 0; i < groups.Count; i++)
            {
                SafetensorsWriter.Write(paths[i], groups[i], shardMetadata);
            }
            AtomicFile.Write(indexPath, s => s.Write(index));
            if (owned)
            {
                set.Commit();
            }
            return paths.AsReadOnly();
        }
        finally
        {
            if (owned)
            {
                set.Dispose();
            }
        }
    }

    /// <summary>
    /// Every existing file a write to <paramref name="indexPath"/> could replace or delete: the index itself and the shards
    /// its previous generation owns (named by the index under this writer's naming, and by no other index in the folder).
    /// New shards never take an existing file's name.
    /// </summary>
    public static IReadOnlyList<string> FilesReplacedBy(string indexPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(indexPath);
        var full = Path.GetFullPath(indexPath);
        var fileName = Path.GetFileName(full);
        var files = new List<string> { full };
        if (fileName.EndsWith(IndexSuffix, StringComparison.Ordinal) && fileName.Length > IndexSuffix.Length)
        {
            var prefix = fileName[..^IndexSuffix.Length];
            var folder = Path.GetDirectoryName(full)!;
            var others = ShardsOfOtherIndexes(folder, fileName);
            files.AddRange(PreviousShards(full, prefix).Where(n => !others.Contains(n)).Order(StringComparer.Ordinal).Select(n => Path.Combine(folder, n)));
        }
        return files;
    }

    /// <summary>
    /// The Hugging Face names (<c>PREFIX-00001-of-0000N.safetensors</c>) when none of them is taken, else the same with
    /// the first suffix <c>-b</c>, <c>-c</c>… for which none is: a name is taken when the previous index or another
    /// index in the folder names it, or any file (a user's, a crashed write's) already has it. So a write never
    /// replaces a file it does not own, and two generations alternate.
    /// </summary>
    private static List<string> ChooseShardNames(string folder, string prefix, int count, HashSet<string> previous, HashSet<string> others)
    {
        foreach (var suffix in new[] { "" }.Concat(Enumerable.Range('b', 25).Select(c => "-" + (char)c)))
        {
            var names = ShardNames(prefix, count, suffix);
            if (!names.Any(n => previous.Contains(n) || others.Contains(n) || File.Exists(Path.Combine(folder, n)) || IsLink(Path.Combine(folder, n))))
            {
                return names;
            }
        }
        throw new InvalidInputException($"{Path.Combine(folder, prefix + IndexSuffix)}: every shard name from {prefix}-00001-of-{count:D5}.safetensors to the suffix -z is taken by another file in {folder}; move those files or choose another index name.");
    }

    private static bool IsLink(string path) => FileIdentity.Of(path, followLastLink: false) is { Kind: FileKind.SymbolicLink };

    /// <summary>Every shard name that the other sharded indexes in <paramref name="folder"/> name (never deleted or replaced).</summary>
    private static HashSet<string> ShardsOfOtherIndexes(string folder, string ownIndexName)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            foreach (var other in Directory.EnumerateFiles(folder, "*" + IndexSuffix))
            {
                if (Path.GetFileName(other) != ownIndexName)
                {
                    names.UnionWith(NamedShards(other, prefix: null));
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
        return names;
    }

    private static List<string> ShardNames(string prefix, int count, string suffix) =>
        Enumerable.Range(1, count)
            .Select(i => string.Create(CultureInfo.InvariantCulture, $"{prefix}-{i:D5}-of-{count:D5}{suffix}.safetensors"))
            .ToList();

    /// <summary>True for a name this writer gives shards of <paramref name="prefix"/>: <c>PREFIX-NNNNN-of-NNNNN[-b…-z].safetensors</c>.</summary>
    private static bool IsOwnShardName(string name, string prefix)
    {
        if (!name.StartsWith(prefix + "-", StringComparison.Ordinal) || !name.EndsWith(".safetensors", StringComparison.Ordinal))
        {
            return false;
        }
        var rest = name[(prefix.Length + 1)..^".safetensors".Length];
        if (rest.Length == 16 && rest[^2] == '-' && rest[^1] is >= 'b' and <= 'z')
        {
            rest = rest[..^2];
        }
        return rest.Length == 14 && rest[5..9] == "-of-" && rest[..5].All(char.IsAsciiDigit) && rest[9..].All(char.IsAsciiDigit);
    }

    /// <summary>Shard names the index already at <paramref name="indexPath"/> refers to, restricted to this writer's own names.</summary>
    private static HashSet<string> PreviousShards(string indexPath, string prefix) => NamedShards(indexPath, prefix);

    /// <summary>
    /// The shard names an index file names (only this writer's own names for <paramref name="prefix"/> when one is
    /// given); empty when it is missing, not a regular file, over 64 MB or not an index.
    /// </summary>
    private static HashSet<string> NamedShards(string indexPath, string? prefix)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            if (FileIdentity.Supported && FileIdentity.Of(indexPath) is not { Kind: FileKind.Regular })
            {
                return names;
            }
            var info = new FileInfo(indexPath);
            if (!info.Exists || info.Length > 64L << 20)
            {
                return names;
            }
            byte[] bytes;
            using (var fs = new FileStream(FileIdentity.OpenInput(indexPath), FileAccess.Read))
            {
                bytes = new byte[Math.Min(fs.Length, 64L << 20)];
                fs.ReadExactly(bytes);
            }
            using var doc = JsonDocument.Parse(bytes);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("weight_map", out var map) && map.ValueKind == JsonValueKind.Object)
            {
                foreach (var e in map.EnumerateObject())
                {
                    if (e.Value.ValueKind == JsonValueKind.String && e.Value.GetString() is { } n && (prefix is null || IsOwnShardName(n, prefix)))
                    {
                        names.Add(n);
                    }
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException or CheckpointFormatException)
        {
            // Not a readable index: nothing of it is reused or deleted; it is simply replaced.
        }
        return names;
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
