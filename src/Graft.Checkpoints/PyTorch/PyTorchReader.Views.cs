namespace Graft.Checkpoints.PyTorch;

// A tensor is a view (offset, size, stride) of a storage: checked against the storage before anything is read.
public sealed partial class PyTorchReader
{
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
}
