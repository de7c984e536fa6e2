using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints.PyTorch;

// Opening: container (zip or legacy) → pickle → storages checked against real bytes → tensor dictionaries → views checked.
public sealed partial class PyTorchReader
{
    private static readonly string[] KnownZipRecords = ["data.pkl", "version", "byteorder", ".data/version", ".data/serialization_id", ".format_version", ".storage_alignment"];

    private static PyTorchReader Load(string path, SafeFileHandle file, string? keyPath)
    {
        var length = RandomAccess.GetLength(file);
        if (length < 4)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.TooShort, path, null, $"{length} bytes is too short for a PyTorch checkpoint");
        }
        var head = StoredZip.ReadAt(file, 0, 4, path);
        var storages = new StorageTable(path);
        object root;
        Dictionary<string, long> offsets;
        PyTorchContainer container;
        if (head is [(byte)'P', (byte)'K', 3, 4])
        {
            (root, offsets) = LoadZip(path, file, length, storages);
            container = PyTorchContainer.Zip;
        }
        else if (head[0] == Op.PROTO)
        {
            (root, offsets) = LoadLegacy(path, file, length, storages);
            container = PyTorchContainer.Legacy;
        }
        else
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null,
                "neither a zip checkpoint nor a legacy pickle checkpoint (PyTorch's pre-0.4 tar format is not supported)");
        }

        var found = new Walker(path);
        found.Walk(root);
        var candidates = new List<(string Path, PyDict Dict, List<TensorEntry> Entries)>();
        foreach (var (dictPath, dict) in found.Dictionaries)
        {
            candidates.Add((dictPath, dict, BuildEntries(path, dictPath, dict, storages)));
        }
        var summaries = candidates.Select(c => new PyTorchTensorDictionary(c.Path, c.Entries.Count, c.Entries.Aggregate(0L, (s, e) => checked(s + e.Info.ByteLength)))).ToList();

        int chosen;
        string reason;
        if (keyPath is not null)
        {
            chosen = candidates.FindIndex(c => c.Path == keyPath);
            if (chosen < 0)
            {
                throw new InvalidInputException(
                    $"{path}: no dictionary of tensors at key path '{keyPath}'. Found: {(candidates.Count == 0 ? "none" : string.Join(", ", candidates.Select(c => $"'{c.Path}'")))}.");
            }
            reason = keyPath.Length == 0 ? "the top level, as requested" : $"'{keyPath}', as requested";
        }
        else if (candidates.Count > 0 && candidates[0].Path.Length == 0 && !found.Partial.Contains(candidates[0].Dict))
        {
            chosen = 0;
            reason = "the top-level object is a dictionary of tensors";
        }
        else if (candidates.Count == 1)
        {
            chosen = 0;
            reason = $"'{candidates[0].Path}' is the only dictionary of tensors in the file";
        }
        else if (candidates.Count > 1)
        {
            chosen = 0;
            for (var i = 1; i < summaries.Count; i++)
            {
                if (summaries[i].TensorCount > summaries[chosen].TensorCount
                    || (summaries[i].TensorCount == summaries[chosen].TensorCount && summaries[i].ByteLength > summaries[chosen].ByteLength))
                {
                    chosen = i;
                }
            }
            reason = $"'{candidates[chosen].Path}' is the largest of {candidates.Count} dictionaries of tensors ({string.Join(", ", candidates.Select(c => $"'{c.Path}'{(found.Partial.Contains(c.Dict) ? $" ({c.Entries.Count} tensors beside other entries)" : "")}"))}); pass a key path to read another";
        }
        else
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null,
                $"no dictionary of tensors found (the pickled object is a {PyTypes.Name(root)})");
        }
        var selected = candidates[chosen];
        return new PyTorchReader(path, file, container, offsets, summaries, selected.Path, reason, selected.Entries, found.Metadata);
    }

    private static (object Root, Dictionary<string, long> Offsets) LoadZip(string path, SafeFileHandle file, long length, StorageTable storages)
    {
        var entries = StoredZip.ReadEntries(file, length, path);
        if (entries.Count == 0)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, "the zip archive is empty");
        }
        var slash = entries[0].Name.IndexOf('/', StringComparison.Ordinal);
        var root = slash > 0 ? entries[0].Name[..slash] : "";
        if (root.Length == 0 || root is "." or "..")
        {
            throw new CheckpointFormatException(CheckpointErrorKind.UnsafePath, path, null, $"zip entry '{entries[0].Name}' is not inside a root folder");
        }
        var byRelative = new Dictionary<string, StoredZipEntry>(StringComparer.Ordinal);
        foreach (var e in entries)
        {
            CheckEntryName(path, e.Name, root);
            if (!byRelative.TryAdd(e.Name[(root.Length + 1)..], e))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"zip entry '{e.Name}' occurs twice");
            }
        }
        foreach (var rel in byRelative.Keys)
        {
            if (rel is "constants.pkl" or "model.json" || rel.StartsWith("code/", StringComparison.Ordinal))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null,
                    $"a TorchScript archive (it has '{root}/{rel}'); TorchScript holds code, and Graft reads only plain torch.save checkpoints");
            }
        }
        foreach (var e in entries)
        {
            if (e.Encrypted)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null, $"zip entry '{e.Name}' is encrypted");
            }
            if (e.Method != 0)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null,
                    $"zip entry '{e.Name}' is compressed (method {e.Method}); PyTorch checkpoints store entries uncompressed");
            }
        }
        var offsets = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (rel, e) in byRelative)
        {
            if (rel.StartsWith("data/", StringComparison.Ordinal) && StorageKeyPattern().IsMatch(rel[5..]))
            {
                offsets[rel[5..]] = e.DataOffset;
            }
            else if (!KnownZipRecords.Contains(rel))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null, $"unexpected zip entry '{e.Name}' in a PyTorch checkpoint");
            }
        }

        if (!byRelative.TryGetValue("version", out var versionEntry))
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"no '{root}/version' record");
        }
        var version = SmallText(path, file, versionEntry);
        if (version is not ("1" or "2" or "3"))
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null, $"serialization version '{version}' (Graft reads versions 1 to 3)");
        }
        if (byRelative.TryGetValue("byteorder", out var byteorderEntry))
        {
            var order = SmallText(path, file, byteorderEntry);
            if (order != "little")
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null, $"byte order '{order}' (only little-endian checkpoints are read)");
            }
        }
        if (!byRelative.TryGetValue("data.pkl", out var pickleEntry))
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"no '{root}/data.pkl' record");
        }
        if (pickleEntry.Length > MaxPickleBytes)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.HeaderTooLarge, path, null, $"data.pkl is {pickleEntry.Length} bytes, over the {MaxPickleBytes}-byte cap");
        }
        var source = new PickleSource(StoredZip.ReadEntry(file, pickleEntry, path));
        var value = new RestrictedUnpickler(source, path, "data.pkl", (pid, at) =>
        {
            var storage = storages.Load(pid, $"data.pkl at byte {at}", legacy: false);
            if (!byRelative.TryGetValue("data/" + storage.Key, out var record))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"storage '{storage.Key}' has no record '{root}/data/{storage.Key}'");
            }
            var expected = storage.Numel * storage.DType.ElementSize(); // overflow already ruled out by StorageTable
            if (record.Length != expected)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.LengthMismatch, path, null,
                    $"storage '{storage.Key}' declares {storage.Numel} {storage.DType} elements ({expected} bytes) but its record holds {record.Length} bytes");
            }
            return storage;
        }).Load();
        if (source.Remaining != 0)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"data.pkl has {source.Remaining} bytes after its STOP");
        }
        return (value, offsets);
    }

    private static void CheckEntryName(string path, string name, string root)
    {
        var parts = name.Split('/');
        if (name.Contains('\\', StringComparison.Ordinal) || name.Contains(':', StringComparison.Ordinal) || parts.Length < 2 || parts[0] != root
            || parts.Any(p => p.Length == 0 || p is "." or "..") || name.Any(char.IsControl))
        {
            throw new CheckpointFormatException(CheckpointErrorKind.UnsafePath, path, null, $"zip entry '{name}' is outside the archive's single root folder '{root}/'");
        }
    }

    private static string SmallText(string path, SafeFileHandle file, StoredZipEntry entry)
    {
        if (entry.Length > 64)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"zip entry '{entry.Name}' is {entry.Length} bytes; expected a short text");
        }
        return Encoding.ASCII.GetString(StoredZip.ReadEntry(file, entry, path)).Trim();
    }

    private static (object Root, Dictionary<string, long> Offsets) LoadLegacy(string path, SafeFileHandle file, long length, StorageTable storages)
    {
        var source = new PickleSource(file, 0, length);
        var magic = new RestrictedUnpickler(source, path, "the magic number", null).Load();
        if (magic is not BigInteger m || m != LegacyMagic)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null, "a pickle, but not a PyTorch checkpoint (no legacy magic number)");
        }
        var protocol = new RestrictedUnpickler(source, path, "the protocol version", null).Load();
        if (protocol is not 1001L)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null, $"legacy protocol version {protocol} (only 1001 is read)");
        }
        var sysInfo = new RestrictedUnpickler(source, path, "the system info", null).Load();
        if (sysInfo is not PyDict info)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"legacy system info is a {PyTypes.Name(sysInfo)}, not a dict");
        }
        var little = info.Entries.FirstOrDefault(e => e.Key is "little_endian").Value;
        if (little is not true)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null, "the checkpoint was written on a big-endian machine (only little-endian checkpoints are read)");
        }
        var root = new RestrictedUnpickler(source, path, "the pickled object", (pid, at) => storages.Load(pid, $"the pickled object at byte {at}", legacy: true)).Load();
        var keyList = new RestrictedUnpickler(source, path, "the storage key list", null).Load();
        if (keyList is not PyList keys || keys.Items.Any(k => k is not string))
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"the storage key list is a {PyTypes.Name(keyList)}, not a list of str");
        }
        var offsets = new Dictionary<string, long>(StringComparer.Ordinal);
        Span<byte> count = stackalloc byte[8];
        foreach (string key in keys.Items)
        {
            if (!storages.ByKey.TryGetValue(key, out var storage))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"the storage key list names '{key}', which no persistent id declared");
            }
            if (offsets.ContainsKey(key))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"the storage key list names '{key}' twice");
            }
            if (!source.TryRead(count))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, null, $"storage '{key}': the file ends before its element count");
            }
            var numel = BinaryPrimitives.ReadInt64LittleEndian(count);
            if (numel != storage.Numel)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.LengthMismatch, path, null, $"storage '{key}' declares {storage.Numel} elements but its record holds {numel}");
            }
            var bytes = storage.Numel * storage.DType.ElementSize();
            offsets[key] = source.Position;
            if (!source.TrySkip(bytes))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, null, $"storage '{key}' ({bytes} bytes at {source.Position}) runs past the end of the file");
            }
        }
        var missing = storages.ByKey.Keys.FirstOrDefault(k => !offsets.ContainsKey(k));
        if (missing is not null)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"storage '{missing}' is used but has no data in the file");
        }
        if (source.Remaining != 0)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.GapInData, path, null, $"{source.Remaining} bytes after the last storage");
        }
        return (root, offsets);
    }

    /// <summary>
    /// Most bytes that views repeating their storage's elements (stride 0, overlapping strides) may add up to in one
    /// dictionary. Such a view is legal in PyTorch (<c>expand</c>), but written out it is materialised: a few bytes of
    /// storage could otherwise declare terabytes of output and fill the disk of whoever converts the file.
    /// </summary>
    internal const long MaxExpandedViewBytes = 256L << 20;

    private static List<TensorEntry> BuildEntries(string path, string dictPath, PyDict dict, StorageTable storages)
    {
        var list = new List<TensorEntry>(dict.Count);
        long expanded = 0;
        foreach (var (k, v) in dict.Entries)
        {
            var name = (string)k;
            if (name.Length == 0)
            {
                // No module parameter has an empty name, and Graft cannot write or address one (found by fuzzing safetensors).
                throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null,
                    $"a tensor in {(dictPath.Length == 0 ? "the top-level dictionary" : $"'{dictPath}'")} has an empty name");
            }
            var display = dictPath.Length == 0 ? name : dictPath + "/" + name;
            var entry = Validate(path, name, display, (TensorRef)v);
            if (entry.Info.ElementCount > entry.Storage.Numel)
            {
                // More elements than its storage holds: the view repeats elements. Count what it would materialise.
                expanded += entry.Info.ByteLength;
                if (expanded > MaxExpandedViewBytes)
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.InvalidShape, path, display,
                        $"a view of shape {entry.Info.Shape} repeats the {entry.Storage.Numel} elements of storage '{entry.Storage.Key}' " +
                        $"({entry.Info.ByteLength} bytes once materialised); views like this may add up to at most {MaxExpandedViewBytes >> 20} MiB per dictionary, " +
                        "as writing them out could fill the disk");
                }
            }
            list.Add(entry);
        }
        return list;
    }

    private static TensorEntry Validate(string path, string name, string display, TensorRef t)
    {
        CheckpointFormatException Fail(CheckpointErrorKind kind, string detail) => new(kind, path, display, detail);
        var storage = t.Storage;
        var es = storage.DType.ElementSize();
        if (t.Size.Length != t.Stride.Length)
        {
            throw Fail(CheckpointErrorKind.InvalidShape, $"size has {t.Size.Length} dimensions but stride has {t.Stride.Length}");
        }
        if (t.Size.Any(d => d < 0))
        {
            throw Fail(CheckpointErrorKind.InvalidShape, $"negative dimension in size ({string.Join(", ", t.Size)})");
        }
        if (t.Stride.Any(s => s < 0))
        {
            throw Fail(CheckpointErrorKind.InvalidShape, $"negative stride ({string.Join(", ", t.Stride)})");
        }
        if (t.Offset < 0)
        {
            throw Fail(CheckpointErrorKind.InvalidOffsets, $"negative storage offset {t.Offset}");
        }
        long numel = 1;
        long bytes;
        long reach = t.Offset;
        try
        {
            foreach (var d in t.Size)
            {
                numel = checked(numel * d);
            }
            bytes = checked(numel * es);
            if (numel > 0)
            {
                for (var i = 0; i < t.Size.Length; i++)
                {
                    reach = checked(reach + checked((t.Size[i] - 1) * t.Stride[i]));
                }
            }
        }
        catch (OverflowException e)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.SizeOverflow, path, display, $"size ({string.Join(", ", t.Size)}), stride ({string.Join(", ", t.Stride)}) and offset {t.Offset} overflow 64 bits", e);
        }
        if (numel > 0 && reach >= storage.Numel)
        {
            throw Fail(CheckpointErrorKind.OutOfBounds,
                $"offset {t.Offset}, size ({string.Join(", ", t.Size)}) and stride ({string.Join(", ", t.Stride)}) reach element {reach} of storage '{storage.Key}', which has {storage.Numel}");
        }
        if (numel == 0 && t.Offset > storage.Numel)
        {
            throw Fail(CheckpointErrorKind.OutOfBounds, $"offset {t.Offset} lies past the end of storage '{storage.Key}' ({storage.Numel} elements)");
        }
        var contiguous = true;
        if (numel > 1)
        {
            long expected = 1;
            for (var i = t.Size.Length - 1; i >= 0; i--)
            {
                if (t.Size[i] != 1 && t.Stride[i] != expected)
                {
                    contiguous = false;
                    break;
                }
                expected *= t.Size[i];
            }
        }
        var info = new TensorInfo(name, storage.DType, new Shape(t.Size), bytes);
        return new TensorEntry(info, storage, t.Offset, t.Size, t.Stride, contiguous, reach);
    }

    /// <summary>Validates persistent ids and keeps one <see cref="StorageRef"/> per storage key.</summary>
    private sealed class StorageTable(string path)
    {
        public Dictionary<string, StorageRef> ByKey { get; } = new(StringComparer.Ordinal);

        public StorageRef Load(object pid, string where, bool legacy)
        {
            CheckpointFormatException Form(string detail) => new(CheckpointErrorKind.ForbiddenOpcode, path, null, $"{where}: persistent id {detail}");
            if (pid is not PyTuple t)
            {
                throw Form($"is a {PyTypes.Name(pid)}; expected the tuple ('storage', storage class, key, location, numel)");
            }
            var a = t.Items;
            if (a.Length == 0 || a[0] is not "storage")
            {
                throw Form($"of kind {(a.Length == 0 ? "()" : PyTypes.Name(a[0]) + " " + (a[0] as string ?? ""))}; only 'storage' is accepted");
            }
            var expectedLength = legacy ? 6 : 5;
            if (a.Length != expectedLength)
            {
                throw Form($"has {a.Length} fields; expected {expectedLength}");
            }
            if (a[1] is not PyGlobal { Kind: PyGlobalKind.StorageClass } cls || a[2] is not string key || a[3] is not string location || a[4] is not (long or BigInteger))
            {
                throw Form($"({string.Join(", ", a.Select(PyTypes.Name))}); expected ('storage', storage class, str, str, int)");
            }
            if (legacy && a[5] is not PyNone)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null, $"{where}: storage '{key}' is a view of another storage (pre-1.0 format)");
            }
            if (!StorageKeyPattern().IsMatch(key))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.UnsafePath, path, null, $"{where}: storage key '{key}' is not a plain name");
            }
            if (a[4] is BigInteger || (long)a[4] < 0)
            {
                throw new CheckpointFormatException(a[4] is BigInteger ? CheckpointErrorKind.SizeOverflow : CheckpointErrorKind.InvalidShape, path, null,
                    $"{where}: storage '{key}' declares {a[4]} elements");
            }
            var numel = (long)a[4];
            var es = cls.StorageDType.ElementSize();
            if (numel > long.MaxValue / es)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.SizeOverflow, path, null, $"{where}: storage '{key}': {numel} elements of {cls.StorageDType} overflow 64 bits");
            }
            if (ByKey.TryGetValue(key, out var existing))
            {
                if (existing.DType != cls.StorageDType || existing.Numel != numel)
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null,
                        $"{where}: storage '{key}' was declared as {existing.Numel} {existing.DType} and again as {numel} {cls.StorageDType}");
                }
                return existing;
            }
            var storage = new StorageRef(key, cls.StorageDType, numel, location);
            ByKey[key] = storage;
            return storage;
        }
    }

    /// <summary>Finds the dictionaries of tensors and the plain values in the unpickled object, with bounded depth.</summary>
    private sealed class Walker(string path)
    {
        private readonly HashSet<object> _seen = new(ReferenceEqualityComparer.Instance);

        public List<(string Path, PyDict Dict)> Dictionaries { get; } = [];

        /// <summary>Dictionaries made of the tensors of a dictionary that also holds other entries.</summary>
        public HashSet<PyDict> Partial { get; } = new(ReferenceEqualityComparer.Instance);

        public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

        public void Walk(object root)
        {
            if (root is PyDict { Count: 0 } empty)
            {
                Dictionaries.Add(("", empty)); // torch.save({}) or an empty state dict: a dictionary of no tensors
                return;
            }
            Visit(root, "", 0);
        }

        private void Visit(object value, string at, int depth)
        {
            if (depth > MaxNesting)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"containers nested deeper than {MaxNesting} levels (at '{Truncate(at)}')");
            }
            if (value is not (PyDict or PyList or PyTuple) || !_seen.Add(value))
            {
                return;
            }
            switch (value)
            {
                case PyDict d:
                    if (d.Count > 0 && d.Entries.All(e => e.Key is string && e.Value is TensorRef))
                    {
                        Dictionaries.Add((at, d));
                        return;
                    }
                    if (d.Entries.Any(e => e.Key is string && e.Value is TensorRef))
                    {
                        // Tensors beside other entries (a nested state dict, numbers): never dropped silently. They are a
                        // dictionary of their own at this key path (its other entries are walked as usual), chosen by
                        // --key or by size like any other, and always named among the candidates.
                        var partial = new PyDict(d.IsOrderedDict);
                        foreach (var (k, v) in d.Entries.Where(e => e.Key is string && e.Value is TensorRef))
                        {
                            partial.Set(k, v);
                        }
                        Partial.Add(partial);
                        Dictionaries.Add((at, partial));
                    }
                    foreach (var (k, v) in d.Entries)
                    {
                        var child = Join(at, KeyText(k));
                        if (IsPlain(v))
                        {
                            if (Metadata.Count < MaxMetadataEntries)
                            {
                                Metadata[child] = PlainText(v);
                            }
                        }
                        else
                        {
                            Visit(v, child, depth + 1);
                        }
                    }
                    break;
                case PyList l:
                    for (var i = 0; i < l.Items.Count; i++)
                    {
                        Visit(l.Items[i], Join(at, i.ToString(CultureInfo.InvariantCulture)), depth + 1);
                    }
                    break;
                case PyTuple t:
                    for (var i = 0; i < t.Items.Length; i++)
                    {
                        Visit(t.Items[i], Join(at, i.ToString(CultureInfo.InvariantCulture)), depth + 1);
                    }
                    break;
            }
        }

        private static string Truncate(string s) => s.Length > 200 ? s[..200] + "…" : s;

        private static string Join(string at, string key) => at.Length == 0 ? key : at + "/" + key;

        private static bool IsPlain(object v) => v is string or long or BigInteger or double or bool;

        private static string PlainText(object v) => v switch
        {
            string s => s,
            bool b => b ? "True" : "False",
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => PyTypes.Name(v),
        };

        private static string KeyText(object k) => k switch
        {
            PyTuple t => "(" + string.Join(", ", t.Items.Select(KeyText)) + ")",
            PyNone => "None",
            _ => PlainText(k),
        };
    }
}
