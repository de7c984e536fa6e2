using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints.PyTorch;

// The zip container torch.save writes since 1.6: one root folder, stored (uncompressed) records, data.pkl and data/KEY.
public sealed partial class PyTorchReader
{
    private static readonly string[] KnownZipRecords = ["data.pkl", "version", "byteorder", ".data/version", ".data/serialization_id", ".format_version", ".storage_alignment"];

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
}
