using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints.PyTorch;

// Opening: container (zip or legacy) → pickle → storages checked against real bytes → tensor dictionaries → views checked.
public sealed partial class PyTorchReader
{
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
}
