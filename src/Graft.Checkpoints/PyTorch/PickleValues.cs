using System.Numerics;

namespace Graft.Checkpoints.PyTorch;

// The value model the restricted unpickler builds. Nothing here can run code: every value is inert data.
// Python ints are long (or BigInteger when they do not fit), floats double, str string, bytes byte[], bool bool.

/// <summary>Python's <c>None</c>.</summary>
internal sealed class PyNone
{
    public static PyNone Instance { get; } = new();

    private PyNone()
    {
    }
}

/// <summary>An immutable Python tuple.</summary>
internal sealed class PyTuple(object[] items)
{
    public object[] Items { get; } = items;

    public static PyTuple Empty { get; } = new([]);
}

/// <summary>A Python list (mutable: APPEND/APPENDS add to it after it was memoised).</summary>
internal sealed class PyList
{
    public List<object> Items { get; } = [];
}

/// <summary>
/// A Python dict or <c>collections.OrderedDict</c>, insertion ordered like both. Keys are restricted to hashable
/// scalars (str, int, float, bool, None) and flat tuples of them, compared the way Python would.
/// </summary>
internal sealed class PyDict(bool ordered)
{
    private readonly List<KeyValuePair<object, object>> _entries = [];
    private readonly Dictionary<object, int> _index = new(PyKeyComparer.Instance);

    /// <summary>True when created by <c>collections.OrderedDict()</c> (the only dict BUILD may set attributes on).</summary>
    public bool IsOrderedDict { get; } = ordered;

    /// <summary>Instance attributes set by BUILD (a state dict's <c>_metadata</c>).</summary>
    public Dictionary<string, object> Attributes { get; } = new(StringComparer.Ordinal);

    public int Count => _entries.Count;

    public IReadOnlyList<KeyValuePair<object, object>> Entries => _entries;

    /// <summary>Python's <c>d[key] = value</c>: replaces in place when the key exists, appends otherwise.</summary>
    public void Set(object key, object value)
    {
        if (_index.TryGetValue(key, out var i))
        {
            _entries[i] = new(_entries[i].Key, value);
        }
        else
        {
            _index[key] = _entries.Count;
            _entries.Add(new(key, value));
        }
    }

    /// <summary>True for the key types this model accepts (the hashable scalars a checkpoint uses).</summary>
    public static bool IsAcceptableKey(object key) => key switch
    {
        string or long or BigInteger or bool or double or PyNone => true,
        PyTuple t => t.Items.All(i => i is string or long or BigInteger or bool or double or PyNone),
        _ => false,
    };
}

/// <summary>Python equality for the key types <see cref="PyDict"/> accepts (1 == True == 1.0).</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static PyKeyComparer Instance { get; } = new();

    public new bool Equals(object? x, object? y)
    {
        if (x is PyTuple tx && y is PyTuple ty)
        {
            return tx.Items.Length == ty.Items.Length && tx.Items.Zip(ty.Items).All(p => Equals(p.First, p.Second));
        }
        if (x is string sx && y is string sy)
        {
            return string.Equals(sx, sy, StringComparison.Ordinal);
        }
        if (x is PyNone || y is PyNone)
        {
            return ReferenceEquals(x, y);
        }
        var nx = Numeric(x);
        var ny = Numeric(y);
        return nx is not null && ny is not null && nx.Value.Equals(ny.Value);
    }

    public int GetHashCode(object obj)
    {
        switch (obj)
        {
            case string s:
                return StringComparer.Ordinal.GetHashCode(s);
            case PyTuple t:
                var h = new HashCode();
                foreach (var i in t.Items)
                {
                    h.Add(GetHashCode(i));
                }
                return h.ToHashCode();
            case PyNone:
                return 0x5a5a;
            default:
                var n = Numeric(obj);
                return n?.GetHashCode() ?? 0;
        }
    }

    // Numbers compare by value across int/bool/float; a non-integral float keeps its own identity.
    private static (BigInteger Whole, double Fraction)? Numeric(object? o) => o switch
    {
        long l => (l, 0),
        BigInteger b => (b, 0),
        bool b => (b ? 1 : 0, 0),
        double d when double.IsFinite(d) && Math.Floor(d) == d => (new BigInteger(d), 0),
        double d => (BigInteger.MinusOne, double.IsNaN(d) ? double.NaN : d == 0 ? 0.5 : d),
        _ => null,
    };
}

/// <summary>What an allowlisted global stands for. No member of this enum names something that can run code.</summary>
internal enum PyGlobalKind
{
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    TorchSize,
    CodecsEncode,
    StorageClass,
}

/// <summary>A reference to an allowlisted global: never resolved to anything callable, only interpreted.</summary>
internal sealed class PyGlobal(string module, string name, PyGlobalKind kind, DType storageDType = default)
{
    public string Module { get; } = module;
    public string Name { get; } = name;
    public PyGlobalKind Kind { get; } = kind;

    /// <summary>For <see cref="PyGlobalKind.StorageClass"/>: the element type of the storage.</summary>
    public DType StorageDType { get; } = storageDType;

    public string FullName => Module + "." + Name;
}

/// <summary>A storage named by a persistent id: where its bytes are comes from the container, not the pickle.</summary>
internal sealed class StorageRef(string key, DType dtype, long numel, string location)
{
    public string Key { get; } = key;
    public DType DType { get; } = dtype;
    public long Numel { get; } = numel;
    public string Location { get; } = location;
}

/// <summary>A tensor as <c>_rebuild_tensor_v2</c> describes it: a view (offset, size, stride) on a storage.</summary>
internal sealed class TensorRef(StorageRef storage, long offset, long[] size, long[] stride)
{
    public StorageRef Storage { get; } = storage;
    public long Offset { get; } = offset;
    public long[] Size { get; } = size;
    public long[] Stride { get; } = stride;
}

/// <summary>Short Python-style type names for error messages.</summary>
internal static class PyTypes
{
    public static string Name(object? o) => o switch
    {
        null => "nothing",
        PyNone => "None",
        bool => "bool",
        long or BigInteger => "int",
        double => "float",
        string => "str",
        byte[] => "bytes",
        PyTuple => "tuple",
        PyList => "list",
        PyDict { IsOrderedDict: true } => "OrderedDict",
        PyDict => "dict",
        PyGlobal g => g.FullName,
        StorageRef => "storage",
        TensorRef => "tensor",
        _ => o.GetType().Name,
    };
}
