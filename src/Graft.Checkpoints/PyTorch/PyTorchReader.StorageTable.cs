using System.Numerics;

namespace Graft.Checkpoints.PyTorch;

public sealed partial class PyTorchReader
{
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
}
