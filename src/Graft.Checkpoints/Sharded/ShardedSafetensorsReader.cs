using System.Collections.ObjectModel;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Graft.Checkpoints.Safetensors;

namespace Graft.Checkpoints.Sharded;

/// <summary>
/// A sharded safetensors checkpoint (Hugging Face layout): <c>model.safetensors.index.json</c> maps each tensor to one
/// shard file in the same folder. Presents all shards as one checkpoint.
/// </summary>
/// <remarks>
/// Shards are opened eagerly, each with <see cref="SafetensorsReader"/> (which reads and validates only headers), so
/// every disagreement between the index and its shards is reported at open, and listing stays as cheap as reading
/// the headers. Each shard's file is closed again once its header is checked, and reopened (after checking it is still
/// the same file) when a tensor of it is read; at most <see cref="MaxOpenShards"/> stay open at a time, so a checkpoint
/// of thousands of shards needs a handful of file descriptors, not one per shard. Shard names must be plain file names inside the index's folder, also after following links.
/// Tensors are listed shard by shard (shards in ordinal name order), each shard in its file order.
/// </remarks>
public sealed class ShardedSafetensorsReader : ICheckpointReader
{
    /// <summary>Largest index file accepted; real ones are a few hundred kilobytes.</summary>
    public const long MaxIndexBytes = 100_000_000;

    /// <summary>Most shard files held open at once; the least recently read is closed beyond it.</summary>
    public const int MaxOpenShards = 16;

    private readonly List<SafetensorsReader> _shards;
    private readonly LinkedList<SafetensorsReader> _recent = new();
    private readonly Lock _recentGate = new();
    private readonly TensorIndex<(TensorInfo Info, SafetensorsReader Shard)> _index;

    private ShardedSafetensorsReader(string path, List<SafetensorsReader> shards, Dictionary<string, string> metadata)
    {
        Path = path;
        _shards = shards;
        _index = new TensorIndex<(TensorInfo Info, SafetensorsReader Shard)>(path,
            shards.SelectMany(s => s.Tensors.Select(t => (t, s))).ToList(), static e => e.Info);
        Metadata = new ReadOnlyDictionary<string, string>(metadata);
        ShardPaths = shards.Select(s => s.Path).ToList().AsReadOnly();
    }

    /// <summary>The index file.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public string Format => ShardedSafetensorsFormat.FormatName;

    /// <inheritdoc/>
    public IReadOnlyList<TensorInfo> Tensors => _index.Tensors;

    /// <summary>
    /// The index's <c>metadata</c> object. Hugging Face stores numbers there (<c>total_size</c>); they are given as their
    /// JSON text, so every value is a string as <see cref="ICheckpointReader.Metadata"/> promises.
    /// </summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The real paths of the shard files, in the order <see cref="Tensors"/> follows.</summary>
    public IReadOnlyList<string> ShardPaths { get; }

    /// <summary>Opens an index and every shard it names, and checks that they agree.</summary>
    /// <exception cref="CheckpointFormatException">
    /// The index is malformed (<see cref="CheckpointErrorKind.HeaderNotJson"/>, <see cref="CheckpointErrorKind.InvalidHeader"/> …),
    /// names a shard outside its folder (<see cref="CheckpointErrorKind.UnsafePath"/>), disagrees with a shard
    /// (<see cref="CheckpointErrorKind.Inconsistent"/>), or a shard is itself malformed.
    /// </exception>
    /// <exception cref="FileNotFoundException">The index or a shard does not exist.</exception>
    public static ShardedSafetensorsReader Open(string indexPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(indexPath);
        var (weightMap, metadata) = ReadIndex(indexPath);
        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;

        // Resolve every shard name before opening any file: an unsafe name fails without touching the file system.
        var shardNames = weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var resolved = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var shard in shardNames)
        {
            var tensor = weightMap.First(kv => kv.Value == shard).Key;
            resolved[shard] = SafePath.ResolveInside(folder, shard, allowSubfolders: false, indexPath, tensor);
        }
        var byReal = resolved.GroupBy(kv => kv.Value, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (byReal is not null)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Inconsistent, indexPath, null,
                $"shards {string.Join(" and ", byReal.Select(kv => $"'{kv.Key}'"))} are the same file.");
        }

        var shards = new List<SafetensorsReader>();
        try
        {
            foreach (var shard in shardNames)
            {
                var reader = SafetensorsReader.Open(resolved[shard]);
                shards.Add(reader);
                reader.Park();
            }
            for (var i = 0; i < shardNames.Count; i++)
            {
                CheckAgreement(indexPath, shardNames[i], shards[i], weightMap);
            }
            return new ShardedSafetensorsReader(indexPath, shards, metadata);
        }
        catch
        {
            foreach (var s in shards)
            {
                s.Dispose();
            }
            throw;
        }
    }

    private static void CheckAgreement(string indexPath, string shardName, SafetensorsReader shard, Dictionary<string, string> weightMap)
    {
        foreach (var t in shard.Tensors)
        {
            if (!weightMap.TryGetValue(t.Name, out var listed))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Inconsistent, indexPath, t.Name,
                    $"shard '{shardName}' holds the tensor but the index does not list it.");
            }
            if (listed != shardName)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Inconsistent, indexPath, t.Name,
                    $"the tensor is in shard '{shardName}' but the index places it in '{listed}' (a tensor in two shards, or a misplaced one).");
            }
        }
        foreach (var (name, file) in weightMap)
        {
            if (file == shardName && !shard.TryGetTensor(name, out _))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Inconsistent, indexPath, name,
                    $"the index places the tensor in shard '{shardName}', which does not hold it.");
            }
        }
    }

    private static readonly JsonReaderOptions Options = new()
    {
        MaxDepth = 64,
        CommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
    };

    /// <summary>Reads and validates the index: size, UTF-8, JSON syntax, then structure.</summary>
    internal static (Dictionary<string, string> WeightMap, Dictionary<string, string> Metadata) ReadIndex(string path)
    {
        byte[] bytes;
        using (var fs = new FileStream(FileIdentity.OpenInput(path), FileAccess.Read))
        {
            if (fs.Length > MaxIndexBytes)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.HeaderTooLarge, path, null,
                    $"index is {fs.Length} bytes, over the limit of {MaxIndexBytes}.");
            }
            bytes = new byte[fs.Length];
            fs.ReadExactly(bytes);
        }
        if (!Utf8.IsValid(bytes))
        {
            throw new CheckpointFormatException(CheckpointErrorKind.HeaderNotUtf8, path, null, "index is not valid UTF-8.");
        }
        var json = bytes.AsSpan();
        if (json.StartsWith("\uFEFF"u8))
        {
            // Some editors add a byte-order mark; it carries no meaning, so it is tolerated here (unlike a safetensors header).
            json = json[3..];
        }
        try
        {
            var check = new Utf8JsonReader(json, Options);
            while (check.Read())
            {
            }
        }
        catch (JsonException ex)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.HeaderNotJson, path, null, $"index is not valid JSON: {ex.Message}", ex);
        }

        var r = new Utf8JsonReader(json, Options);
        r.Read();
        if (r.TokenType != JsonTokenType.StartObject)
        {
            throw Invalid(path, $"index must be a JSON object, found {r.TokenType}.");
        }
        Dictionary<string, string>? weightMap = null;
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var seenMetadata = false;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var key = r.GetString()!;
            r.Read();
            switch (key)
            {
                case "weight_map" when weightMap is null:
                    weightMap = ReadWeightMap(path, ref r);
                    break;
                case "metadata" when !seenMetadata:
                    seenMetadata = true;
                    ReadMetadata(path, ref r, metadata);
                    break;
                case "weight_map" or "metadata":
                    throw Invalid(path, $"'{key}' appears twice in the index.");
                default:
                    // Other top-level keys are not the index's business; skip them whole.
                    r.Skip();
                    break;
            }
        }
        if (weightMap is null)
        {
            throw Invalid(path, "index has no 'weight_map' object.");
        }
        return (weightMap, metadata);
    }

    private static Dictionary<string, string> ReadWeightMap(string path, ref Utf8JsonReader r)
    {
        if (r.TokenType != JsonTokenType.StartObject)
        {
            throw Invalid(path, $"'weight_map' must be an object of tensor name to shard file, found {r.TokenType}.");
        }
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var name = r.GetString()!;
            r.Read();
            if (r.TokenType != JsonTokenType.String)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.InvalidHeader, path, name, $"the shard file must be a string, found {r.TokenType}.");
            }
            if (!map.TryAdd(name, r.GetString()!))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.DuplicateName, path, name, "the tensor appears twice in 'weight_map'.");
            }
        }
        return map;
    }

    private static void ReadMetadata(string path, ref Utf8JsonReader r, Dictionary<string, string> metadata)
    {
        if (r.TokenType != JsonTokenType.StartObject)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.InvalidMetadata, path, null, $"'metadata' must be an object, found {r.TokenType}.");
        }
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var key = r.GetString()!;
            r.Read();
            string value = r.TokenType switch
            {
                JsonTokenType.String => r.GetString()!,
                JsonTokenType.Number => Encoding.UTF8.GetString(r.ValueSpan),
                JsonTokenType.True => "true",
                JsonTokenType.False => "false",
                _ => throw new CheckpointFormatException(CheckpointErrorKind.InvalidMetadata, path, null,
                    $"metadata value for '{key}' must be a string, number or boolean, found {r.TokenType}."),
            };
            if (!metadata.TryAdd(key, value))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.InvalidMetadata, path, null, $"metadata key '{key}' appears twice.");
            }
        }
    }

    private static CheckpointFormatException Invalid(string path, string detail) => new(CheckpointErrorKind.InvalidHeader, path, null, detail);

    /// <inheritdoc/>
    public bool TryGetTensor(string name, out TensorInfo info) => _index.TryGetTensor(name, out info);

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The tensor does not belong to this checkpoint, or the destination has the wrong length.</exception>
    public void ReadBytes(TensorInfo tensor, Span<byte> destination) => Used(Shard(tensor)).ReadBytes(tensor, destination);

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The tensor does not belong to this checkpoint.</exception>
    public void CopyTo(TensorInfo tensor, Stream destination) => Used(Shard(tensor)).CopyTo(tensor, destination);

    /// <summary>Marks a shard as just read and closes the least recently read ones beyond <see cref="MaxOpenShards"/>.</summary>
    private SafetensorsReader Used(SafetensorsReader shard)
    {
        lock (_recentGate)
        {
            _recent.Remove(shard);
            _recent.AddFirst(shard);
            while (_recent.Count > MaxOpenShards)
            {
                var last = _recent.Last!.Value;
                _recent.RemoveLast();
                last.Park(); // a shard being read by another thread stays open until it is read next
            }
        }
        return shard;
    }

    /// <summary>The shard reader that holds a tensor, for zero-copy access through <see cref="SafetensorsReader.GetTensorOffset"/>.</summary>
    /// <exception cref="ArgumentException">The tensor does not belong to this checkpoint.</exception>
    public SafetensorsReader Shard(TensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return _index.Find(tensor).Shard;
    }

    /// <summary>Releases every shard.</summary>
    public void Dispose()
    {
        foreach (var s in _shards)
        {
            s.Dispose();
        }
    }
}
