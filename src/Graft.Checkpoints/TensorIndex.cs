namespace Graft.Checkpoints;

/// <summary>
/// The tensors of an open checkpoint, in file order and by name: what every reader's <c>Tensors</c>,
/// <c>TryGetTensor</c> and "is this tensor mine" check share. <typeparamref name="TEntry"/> is the reader's own record
/// of where a tensor's bytes are (an offset, a storage, a shard …).
/// </summary>
internal sealed class TensorIndex<TEntry>
{
    private readonly Dictionary<string, TEntry> _byName;
    private readonly Func<TEntry, TensorInfo> _info;
    private readonly string _path;
    private readonly string _what;

    /// <param name="path">The checkpoint, for messages.</param>
    /// <param name="entries">The reader's entries in file order; names are unique (each reader refuses duplicates
    /// with its own format's error before building the index).</param>
    /// <param name="info">The tensor an entry describes.</param>
    /// <param name="what">What the format calls a tensor, for messages (<c>tensor</c>, <c>initializer</c>).</param>
    public TensorIndex(string path, IReadOnlyList<TEntry> entries, Func<TEntry, TensorInfo> info, string what = "tensor")
    {
        _path = path;
        _info = info;
        _what = what;
        _byName = new Dictionary<string, TEntry>(entries.Count, StringComparer.Ordinal);
        var infos = new TensorInfo[entries.Count];
        for (var i = 0; i < infos.Length; i++)
        {
            infos[i] = info(entries[i]);
            _byName.Add(infos[i].Name, entries[i]);
        }
        Tensors = infos.AsReadOnly();
    }

    /// <summary>The tensors, in file order.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>Looks a tensor up by name.</summary>
    public bool TryGetTensor(string name, out TensorInfo info)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_byName.TryGetValue(name, out var e))
        {
            info = _info(e);
            return true;
        }
        info = null!;
        return false;
    }

    /// <summary>
    /// The entry of <paramref name="tensor"/>, which must be one of <see cref="Tensors"/> (value equality: a
    /// <see cref="TensorInfo"/> equal in name, dtype, shape and length describes exactly the same bytes).
    /// </summary>
    /// <exception cref="ArgumentException">The tensor is not one of this checkpoint's.</exception>
    public TEntry Find(TensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (_byName.TryGetValue(tensor.Name, out var e) && _info(e).Equals(tensor))
        {
            return e;
        }
        throw new ArgumentException($"Tensor '{tensor.Name}' {tensor.Shape} {tensor.DType} is not a{(_what.StartsWith('i') ? "n" : "")} {_what} of {_path}.", nameof(tensor));
    }

    /// <summary>
    /// <see cref="Find"/> for a read into <paramref name="destination"/>, which must be exactly the tensor's length (what
    /// <see cref="ICheckpointReader.ReadBytes"/> promises every reader checks).
    /// </summary>
    /// <exception cref="ArgumentException">The tensor is not one of this checkpoint's, or the length differs.</exception>
    public TEntry FindForRead(TensorInfo tensor, ReadOnlySpan<byte> destination)
    {
        var e = Find(tensor);
        var info = _info(e);
        if (destination.Length != info.ByteLength)
        {
            throw new ArgumentException($"Tensor '{info.Name}' has {info.ByteLength} bytes; the destination holds {destination.Length}.", nameof(destination));
        }
        return e;
    }
}
