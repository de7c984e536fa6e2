using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Graft.Checkpoints;

namespace Graft.Transforms;

/// <summary>
/// What the managed twins of the transforms share: the dtypes they compute on, casts between checkpoint bytes and the
/// work arrays (float32, or float64 for a float64 source, as the libtorch path), and the index arithmetic of an axis.
/// Everything here reproduces libtorch's CPU results bit for bit; the property tests in
/// <c>tests/Graft.Tests/Transforms/TwinTests.cs</c> hold it to that.
/// </summary>
/// <remarks>
/// Rounding follows libtorch: float32 → float16 and float32 → bfloat16 round to nearest, ties to even; a float64 goes to
/// float16 or bfloat16 through float32 (libtorch's <c>c10::Half</c> and <c>c10::BFloat16</c> are built from a float), so
/// it is rounded twice exactly as there. A NaN stays a NaN; its payload is not held to libtorch's, whose vectorised and
/// scalar kernels disagree on it.
/// </remarks>
internal static class Twins
{
    /// <summary>True for the dtypes twins read and write: float16, bfloat16, float32 and float64.</summary>
    public static bool Holds(DType dtype) => dtype is DType.F16 or DType.BF16 or DType.F32 or DType.F64;

    /// <summary>The product of <paramref name="dims"/> as an array length; throws when it does not fit one.</summary>
    public static int Length(IEnumerable<long> dims)
    {
        long n = 1;
        foreach (var d in dims)
        {
            n = checked(n * d);
        }
        return n <= Array.MaxLength ? (int)n : throw new NotSupportedException($"A tensor of {n} elements is too large for a managed twin.");
    }

    /// <summary>A shape seen around one axis: elements before it (outer), its size, and elements after it (inner, contiguous).</summary>
    public static (int Outer, int Size, int Inner) Around(Shape shape, int axis) =>
        (Length(shape.Take(axis)), checked((int)shape[axis]), Length(shape.Skip(axis + 1)));

    /// <summary>Decodes little-endian checkpoint bytes of <paramref name="dtype"/> into a new work array of <typeparamref name="T"/>.</summary>
    public static T[] Decode<T>(ReadOnlySpan<byte> bytes, DType dtype) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var result = new T[bytes.Length / dtype.ElementSize()];
        DecodeInto(bytes, dtype, result);
        return result;
    }

    /// <summary>
    /// Decodes little-endian checkpoint bytes of <paramref name="dtype"/> into <paramref name="destination"/> (one value
    /// per element of the bytes): <see cref="Decode{T}"/> without the allocation, for work done a block at a time.
    /// </summary>
    public static void DecodeInto<T>(ReadOnlySpan<byte> bytes, DType dtype, Span<T> destination) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = bytes.Length / dtype.ElementSize();
        if (typeof(T) == typeof(float))
        {
            DecodeSingle(bytes, dtype, MemoryMarshal.Cast<T, float>(destination)[..n]);
        }
        else if (typeof(T) == typeof(double))
        {
            var d = MemoryMarshal.Cast<T, double>(destination)[..n];
            if (dtype == DType.F64)
            {
                MemoryMarshal.Cast<byte, double>(bytes).CopyTo(d);
            }
            else
            {
                // float16, bfloat16 and float32 all widen exactly through float32.
                var f = new float[n];
                DecodeSingle(bytes, dtype, f);
                TensorPrimitives.ConvertTruncating<float, double>(f, d);
            }
        }
        else
        {
            throw new NotSupportedException($"Twins compute in float32 or float64, not {typeof(T).Name}.");
        }
    }

    /// <summary>Encodes a work array as little-endian bytes of <paramref name="dtype"/>, rounding as libtorch's <c>.to(dtype)</c>.</summary>
    public static byte[] Encode<T>(ReadOnlySpan<T> values, DType dtype) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var bytes = new byte[checked(values.Length * dtype.ElementSize())];
        EncodeInto(values, dtype, bytes);
        return bytes;
    }

    /// <summary>
    /// Encodes <paramref name="values"/> into <paramref name="destination"/> (exactly their length in <paramref name="dtype"/>),
    /// rounding as libtorch's <c>.to(dtype)</c>: <see cref="Encode{T}"/> without the allocation.
    /// </summary>
    public static void EncodeInto<T>(ReadOnlySpan<T> values, DType dtype, Span<byte> destination) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var bytes = destination[..checked(values.Length * dtype.ElementSize())];
        if (typeof(T) == typeof(double))
        {
            var d = MemoryMarshal.Cast<T, double>(values);
            if (dtype == DType.F64)
            {
                d.CopyTo(MemoryMarshal.Cast<byte, double>(bytes));
                return;
            }
            var f = dtype == DType.F32 ? MemoryMarshal.Cast<byte, float>(bytes) : new float[d.Length];
            TensorPrimitives.ConvertTruncating<double, float>(d, f);
            if (dtype != DType.F32)
            {
                EncodeSingle(f, dtype, bytes);
            }
            return;
        }
        if (typeof(T) != typeof(float))
        {
            throw new NotSupportedException($"Twins compute in float32 or float64, not {typeof(T).Name}.");
        }
        EncodeSingle(MemoryMarshal.Cast<T, float>(values), dtype, bytes);
    }

    /// <summary>
    /// A chain on twins, step by step: the checkpoint bytes of <paramref name="from"/> decoded to <typeparamref name="T"/>,
    /// each step's twin applied to a new array, the result encoded into <paramref name="to"/>. The executor's path for a
    /// computed tensor that is not a pure gather, and the definition <see cref="GatherChain"/> is held to.
    /// </summary>
    public static byte[] RunSteps<T>(ReadOnlySpan<byte> bytes, DType from, Shape shape, IEnumerable<WeightTransform> steps, DType to)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var values = Decode<T>(bytes, from);
        foreach (var step in steps)
        {
            values = step.ApplyTwin<T>(values, shape);
            shape = step.OutputShape(shape);
        }
        return Encode<T>(values, to);
    }

    /// <summary>
    /// Casts checkpoint bytes from one dtype to another as libtorch's <c>.to()</c> does: through float64 for a float64
    /// source, else through float32 (exact for float16 and bfloat16).
    /// </summary>
    public static byte[] Cast(ReadOnlySpan<byte> bytes, DType from, DType to) => from == DType.F64
        ? Encode<double>(Decode<double>(bytes, from), to)
        : Encode<float>(Decode<float>(bytes, from), to);

    /// <summary>bfloat16 of a float32: round to nearest, ties to even (c10's <c>round_to_nearest_even</c>); NaN gives a quiet NaN.</summary>
    public static ushort ToBFloat16(float value)
    {
        if (float.IsNaN(value))
        {
            return 0x7FC0;
        }
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint bias = ((bits >> 16) & 1) + 0x7FFF;
        return (ushort)((bits + bias) >> 16);
    }

    /// <summary>bfloat16 bits to float32 bits (exact: the high half of a float32), a vector at a time.</summary>
    private static void DecodeBFloat16(ReadOnlySpan<ushort> source, Span<uint> destination)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int w = Vector<ushort>.Count, half = Vector<uint>.Count;
            for (; i <= source.Length - w; i += w)
            {
                Vector.Widen(new Vector<ushort>(source[i..]), out var low, out var high);
                (low << 16).CopyTo(destination[i..]);
                (high << 16).CopyTo(destination[(i + half)..]);
            }
        }
        for (; i < source.Length; i++)
        {
            destination[i] = (uint)source[i] << 16;
        }
    }

    /// <summary><see cref="ToBFloat16"/> a vector at a time: the same round to nearest even, the same quiet NaN.</summary>
    private static void EncodeBFloat16(ReadOnlySpan<uint> source, Span<ushort> destination)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int w = Vector<ushort>.Count, half = Vector<uint>.Count;
            for (; i <= source.Length - w; i += w)
            {
                Vector.Narrow(RoundToBFloat16(new Vector<uint>(source[i..])), RoundToBFloat16(new Vector<uint>(source[(i + half)..]))).CopyTo(destination[i..]);
            }
        }
        for (; i < source.Length; i++)
        {
            destination[i] = ToBFloat16(BitConverter.UInt32BitsToSingle(source[i]));
        }
    }

    /// <summary>float32 bits to bfloat16 bits in the low half of each lane (see <see cref="ToBFloat16"/>).</summary>
    private static Vector<uint> RoundToBFloat16(Vector<uint> bits)
    {
        var nan = Vector.GreaterThan(bits & new Vector<uint>(0x7FFF_FFFFu), new Vector<uint>(0x7F80_0000u));
        var rounded = (bits + (Vector.ShiftRightLogical(bits, 16) & Vector<uint>.One) + new Vector<uint>(0x7FFFu)) >> 16;
        return Vector.ConditionalSelect(nan, new Vector<uint>(0x7FC0u), rounded);
    }

    private static void DecodeSingle(ReadOnlySpan<byte> bytes, DType dtype, Span<float> destination)
    {
        switch (dtype)
        {
            case DType.F32:
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination);
                break;
            case DType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), destination);
                break;
            case DType.BF16:
                DecodeBFloat16(MemoryMarshal.Cast<byte, ushort>(bytes), MemoryMarshal.Cast<float, uint>(destination));
                break;
            case DType.F64:
                TensorPrimitives.ConvertTruncating<double, float>(MemoryMarshal.Cast<byte, double>(bytes), destination);
                break;
            default:
                throw new NotSupportedException($"Twins do not read {dtype}.");
        }
    }

    private static void EncodeSingle(ReadOnlySpan<float> values, DType dtype, Span<byte> destination)
    {
        switch (dtype)
        {
            case DType.F32:
                values.CopyTo(MemoryMarshal.Cast<byte, float>(destination));
                break;
            case DType.F16:
                TensorPrimitives.ConvertToHalf(values, MemoryMarshal.Cast<byte, Half>(destination));
                break;
            case DType.BF16:
                EncodeBFloat16(MemoryMarshal.Cast<float, uint>(values), MemoryMarshal.Cast<byte, ushort>(destination));
                break;
            case DType.F64:
                TensorPrimitives.ConvertTruncating<float, double>(values, MemoryMarshal.Cast<byte, double>(destination));
                break;
            default:
                throw new NotSupportedException($"Twins do not write {dtype}.");
        }
    }

    /// <summary>
    /// Copies the box of <paramref name="count"/> elements per axis starting at <paramref name="from"/> in a row-major
    /// <paramref name="source"/> of <paramref name="sourceDims"/> to <paramref name="to"/> in <paramref name="destination"/>
    /// of <paramref name="destinationDims"/>: narrow and pad as one data movement.
    /// </summary>
    public static void CopyBox<T>(ReadOnlySpan<T> source, long[] sourceDims, Span<T> destination, long[] destinationDims, long[] from, long[] to, long[] count)
    {
        int rank = sourceDims.Length;
        if (rank == 0)
        {
            destination[0] = source[0];
            return;
        }
        if (count.Any(c => c == 0))
        {
            return;
        }
        var at = new long[rank - 1];
        int run = checked((int)count[rank - 1]);
        while (true)
        {
            long s = 0, d = 0;
            for (int a = 0; a < rank - 1; a++)
            {
                s = s * sourceDims[a] + from[a] + at[a];
                d = d * destinationDims[a] + to[a] + at[a];
            }
            s = s * sourceDims[rank - 1] + from[rank - 1];
            d = d * destinationDims[rank - 1] + to[rank - 1];
            source.Slice(checked((int)s), run).CopyTo(destination.Slice(checked((int)d), run));
            int k = rank - 2;
            while (k >= 0 && ++at[k] == count[k])
            {
                at[k--] = 0;
            }
            if (k < 0)
            {
                return;
            }
        }
    }
}
