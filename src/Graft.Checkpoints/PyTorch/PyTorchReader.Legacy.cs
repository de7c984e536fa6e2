using System.Buffers.Binary;
using System.Numerics;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints.PyTorch;

// The legacy container: magic number, protocol, system info and the object as pickles, then the raw storages.
public sealed partial class PyTorchReader
{
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
}
