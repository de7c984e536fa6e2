using System.Collections;
using System.Globalization;

namespace Graft.Checkpoints;

/// <summary>
/// The shape of a tensor: an immutable list of non-negative dimension sizes with value equality.
/// A rank-0 shape is a scalar (one element); any zero dimension makes an empty tensor.
/// </summary>
/// <remarks>
/// Arrays compare by reference and <c>ImmutableArray</c> does not give records value equality, so shapes get
/// their own small type: plans and reports compare shapes all the time, and a wrong comparison is a silent bug.
/// </remarks>
public sealed class Shape : IReadOnlyList<long>, IEquatable<Shape>
{
    private readonly long[] _dims;

    /// <summary>Creates a shape; every dimension must be non-negative.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is negative.</exception>
    public Shape(params long[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        foreach (var d in dims)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(d, nameof(dims));
        }
        _dims = (long[])dims.Clone();
    }

    /// <summary>Creates a shape from any sequence of dimensions.</summary>
    public Shape(IEnumerable<long> dims) : this(dims.ToArray())
    {
    }

    /// <summary>The scalar shape <c>()</c>.</summary>
    public static Shape Scalar { get; } = new();

    /// <summary>Number of dimensions.</summary>
    public int Rank => _dims.Length;

    /// <inheritdoc/>
    public int Count => _dims.Length;

    /// <inheritdoc/>
    public long this[int index] => _dims[index];

    /// <summary>
    /// Number of elements (the product of the dimensions, 1 for a scalar).
    /// </summary>
    /// <exception cref="OverflowException">The product does not fit in a signed 64-bit integer.</exception>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (var d in _dims)
            {
                n = checked(n * d);
            }
            return n;
        }
    }

    /// <summary>A copy of the dimensions, for APIs (such as TorchSharp) that take an array.</summary>
    public long[] ToArray() => (long[])_dims.Clone();

    /// <summary>Returns a shape equal to this one with dimension <paramref name="axis"/> replaced.</summary>
    public Shape With(int axis, long size)
    {
        var d = ToArray();
        d[axis] = size;
        return new Shape(d);
    }

    /// <inheritdoc/>
    public IEnumerator<long> GetEnumerator() => ((IEnumerable<long>)_dims).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _dims.GetEnumerator();

    /// <inheritdoc/>
    public bool Equals(Shape? other) => other is not null && _dims.AsSpan().SequenceEqual(other._dims);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as Shape);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var d in _dims)
        {
            h.Add(d);
        }
        return h.ToHashCode();
    }

    /// <summary>Value equality.</summary>
    public static bool operator ==(Shape? a, Shape? b) => a is null ? b is null : a.Equals(b);

    /// <summary>Value inequality.</summary>
    public static bool operator !=(Shape? a, Shape? b) => !(a == b);

    /// <summary>PyTorch style: <c>(64, 3, 7, 7)</c>, <c>()</c> for a scalar.</summary>
    public override string ToString() =>
        "(" + string.Join(", ", _dims.Select(d => d.ToString(CultureInfo.InvariantCulture))) + ")";
}
