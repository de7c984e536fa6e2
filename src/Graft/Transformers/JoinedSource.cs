using Graft.Checkpoints;

namespace Graft.Transformers;

/// <summary>
/// A source checkpoint plus tensors that are other tensors of it stacked along their rows (same dtype, same trailing
/// dimensions), read on demand: the unfused q, k and v of a source that a fused target's <c>qkv_proj</c> reads as one
/// input. Stacking row-major tensors along rows is their bytes one after the other, so nothing is computed here; what
/// each part becomes is the plan's <see cref="ConcatRows"/> step.
/// </summary>
internal sealed class JoinedSource : ICheckpointReader
{
    private readonly ICheckpointReader _base;
    private readonly Dictionary<string, TensorInfo[]> _joined = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TensorInfo> _infos = new(StringComparer.Ordinal);
    private readonly List<TensorInfo> _tensors;

    public JoinedSource(ICheckpointReader source)
    {
        _base = source;
        _tensors = [.. source.Tensors];
    }

    /// <summary>The name a stack of <paramref name="parts"/> goes by: the first part's name and the others' last two components.</summary>
    public static string NameOf(IReadOnlyList<TensorInfo> parts) =>
        parts[0].Name + string.Concat(parts.Skip(1).Select(p => "+" + string.Join(".", p.Name.Split('.')[^2..])));

    /// <summary>The names of the parts a stack's <see cref="NameOf"/> name stands for, or null for a name that is no stack.</summary>
    public static string[]? PartNames(string name)
    {
        var pieces = name.Split('+');
        if (pieces.Length < 2)
        {
            return null;
        }
        var first = pieces[0].Split('.');
        var prefix = first.Length > 2 ? string.Join(".", first[..^2]) + "." : "";
        return pieces.Select((p, i) => i == 0 ? p : prefix + p).ToArray();
    }

    /// <summary>The tensors of <paramref name="source"/> a stack's <see cref="NameOf"/> name stands for, or null when it names none.</summary>
    public static TensorInfo[]? PartsNamed(string name, ICheckpointReader source)
    {
        if (PartNames(name) is not { } names)
        {
            return null;
        }
        var parts = new TensorInfo[names.Length];
        for (int i = 0; i < names.Length; i++)
        {
            if (!source.TryGetTensor(names[i], out parts[i]!))
            {
                return null;
            }
        }
        return NameOf(parts) == name ? parts : null;
    }

    /// <summary>The parts of a stacked tensor, or null for a tensor of the base checkpoint.</summary>
    public IReadOnlyList<TensorInfo>? PartsOf(string name) => _joined.GetValueOrDefault(name);

    /// <summary>Adds (once) the stack of <paramref name="parts"/>; null when they cannot be stacked (dtypes or trailing dimensions differ).</summary>
    public TensorInfo? Join(IReadOnlyList<TensorInfo> parts)
    {
        var name = NameOf(parts);
        if (_infos.TryGetValue(name, out var known))
        {
            return known;
        }
        var first = parts[0];
        if (parts.Any(p => p.DType != first.DType || p.Shape.Rank != first.Shape.Rank || p.Shape.Rank == 0 || !p.Shape.Skip(1).SequenceEqual(first.Shape.Skip(1))))
        {
            return null;
        }
        var shape = first.Shape.With(0, parts.Sum(p => p.Shape[0]));
        var info = new TensorInfo(name, first.DType, shape, parts.Sum(p => p.ByteLength));
        _joined[name] = [.. parts];
        _infos[name] = info;
        _tensors.Add(info);
        return info;
    }

    public string Path => _base.Path;

    public string Format => _base.Format;

    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    public IReadOnlyDictionary<string, string> Metadata => _base.Metadata;

    public bool TryGetTensor(string name, out TensorInfo info) =>
        _infos.TryGetValue(name, out info!) || _base.TryGetTensor(name, out info!);

    public void ReadBytes(TensorInfo tensor, Span<byte> destination)
    {
        if (!_joined.TryGetValue(tensor.Name, out var parts))
        {
            _base.ReadBytes(tensor, destination);
            return;
        }
        if (destination.Length != tensor.ByteLength)
        {
            throw new ArgumentException($"'{tensor.Name}' is {tensor.ByteLength} bytes; the destination holds {destination.Length}.", nameof(destination));
        }
        long at = 0;
        foreach (var p in parts)
        {
            _base.ReadBytes(p, destination.Slice(checked((int)at), checked((int)p.ByteLength)));
            at += p.ByteLength;
        }
    }

    public void CopyTo(TensorInfo tensor, Stream destination)
    {
        if (!_joined.TryGetValue(tensor.Name, out var parts))
        {
            _base.CopyTo(tensor, destination);
            return;
        }
        foreach (var p in parts)
        {
            _base.CopyTo(p, destination);
        }
    }

    public void Dispose()
    {
        // The base reader belongs to the caller.
    }
}
