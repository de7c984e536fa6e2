using System.Numerics;
using System.Numerics.Tensors;
using Graft.Checkpoints;

namespace Graft.Transforms;

/// <summary>
/// A transform chain whose steps only move values and scale them uniformly (<see cref="WeightTransform.AsGather"/>:
/// HyperCloning's tiles, repeated K/V heads, zeroed identity blocks), composed into one index map per axis, so that the
/// executor writes the output in its stored dtype straight from the source's bytes: each source value is decoded,
/// scaled and encoded once, into the target's dtype, and the output is gathered from those bytes a block at a time into
/// the destination. The float32 copies of the output through every step, and the time and memory they cost (a ×2
/// widening of a bf16 matrix held eight times its bytes), disappear; the result is the twins' byte for byte.
/// </summary>
/// <remarks>
/// Why the bytes are the same: in the step-by-step path every output value is the cast of
/// <c>((decode(x)·s₁)·s₂)…</c> (or of zero, then scaled) for one source value x, each product rounded to the work dtype;
/// here the same operations run in the same order on the same value, once per source value instead of once per copy.
/// </remarks>
internal sealed class GatherChain
{
    /// <summary>Bytes gathered before each write to the destination.</summary>
    internal const int BlockBytes = 8 << 20;

    private const int ConvertChunk = 1 << 14;

    private readonly long[] _sourceDims;
    private readonly long[] _outputDims;
    private readonly long[]?[] _index;
    private readonly List<AxisGather> _values;

    private GatherChain(long[] sourceDims, long[] outputDims, long[]?[] index, List<AxisGather> values) =>
        (_sourceDims, _outputDims, _index, _values) = (sourceDims, outputDims, index, values);

    /// <summary>True when every output value is the same (a zeroing step): the source need not be read.</summary>
    public bool IsConstant => _values.Any(v => v.Zero);

    /// <summary>
    /// The chain of <paramref name="steps"/> on an input of <paramref name="input"/> as one gather, or null when a step
    /// is not pure data movement (means, sums, pads from the template: the step-by-step path computes those).
    /// </summary>
    public static GatherChain? TryCompose(IReadOnlyList<WeightTransform> steps, Shape input)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ArgumentNullException.ThrowIfNull(input);
        var shape = input;
        var index = new long[]?[input.Rank];
        var values = new List<AxisGather>();
        foreach (var step in steps)
        {
            if (step.AsGather(shape) is not { } g)
            {
                return null;
            }
            var output = step.OutputShape(shape);
            if (g.Index is { } map)
            {
                if (g.Axis >= shape.Rank || output.Rank != shape.Rank || map.Length != output[g.Axis])
                {
                    return null;
                }
                // Output index j of this step reads its input's index map[j], which reads the source's index[axis][map[j]].
                var before = index[g.Axis];
                index[g.Axis] = before is null ? (long[])map.Clone() : Array.ConvertAll(map, j => before[j]);
            }
            else if (!output.SequenceEqual(shape))
            {
                return null;
            }
            if (g.Zero || g.Scale != 1)
            {
                values.Add(g);
            }
            shape = output;
        }
        return new GatherChain(input.ToArray(), shape.ToArray(), index, values);
    }

    /// <summary>
    /// Turns the source's values, in place, into the values the output holds: decoded from <paramref name="from"/> to
    /// <typeparamref name="T"/> (the work dtype of the step-by-step path), scaled or zeroed as each step does, encoded
    /// into <paramref name="to"/>. <paramref name="buffer"/> holds the source's bytes at its start and must be long
    /// enough for either dtype's bytes of every element.
    /// </summary>
    public void ConvertInPlace<T>(Span<byte> buffer, long elements, DType from, DType to) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int fs = from.ElementSize(), ts = to.ElementSize();
        if (buffer.Length < elements * Math.Max(fs, ts))
        {
            throw new ArgumentException($"A buffer of {buffer.Length} bytes cannot hold {elements} elements of {from} and {to}.", nameof(buffer));
        }
        var work = new T[(int)Math.Min(ConvertChunk, Math.Max(elements, 1))];
        long chunks = (elements + ConvertChunk - 1) / ConvertChunk;
        // Forward when the output's elements are no larger (each chunk is written at or before where it was read),
        // backward when larger (at or after): a chunk never overwrites bytes not yet read.
        for (long k = 0; k < chunks; k++)
        {
            long c = ts <= fs ? k : chunks - 1 - k;
            long start = c * ConvertChunk;
            int n = (int)Math.Min(ConvertChunk, elements - start);
            var values = work.AsSpan(0, n);
            Twins.DecodeInto<T>(buffer.Slice(checked((int)(start * fs)), n * fs), from, values);
            Apply(values);
            Twins.EncodeInto<T>(values, to, buffer.Slice(checked((int)(start * ts)), n * ts));
        }
    }

    /// <summary>The one output value of a constant chain, as bytes of <paramref name="to"/>.</summary>
    public byte[] ConstantValue<T>(DType to) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var one = new T[1];
        Apply(one);
        return Twins.Encode<T>(one, to);
    }

    /// <summary>The steps' factors and zeros on decoded values, in the steps' order, each product rounded to T as the twins do.</summary>
    private void Apply<T>(Span<T> values) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (var v in _values)
        {
            if (v.Zero)
            {
                values.Clear();
            }
            if (v.Scale != 1)
            {
                TensorPrimitives.Multiply(values, T.CreateChecked(v.Scale), values);
            }
        }
    }

    /// <summary>
    /// Writes the output (row-major, <paramref name="elementSize"/> bytes an element) to <paramref name="destination"/>,
    /// gathering from <paramref name="converted"/> (the source's elements, already in the output's dtype) through
    /// <paramref name="block"/>, which is written each time it fills.
    /// </summary>
    public void Write(ReadOnlyMemory<byte> converted, int elementSize, Stream destination, Span<byte> block)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (block.IsEmpty)
        {
            throw new ArgumentException("The block must hold at least one byte.", nameof(block));
        }
        var (sourceDims, outputDims, index) = Collapsed();
        int rank = outputDims.Length;
        if (rank == 0)
        {
            destination.Write(converted.Span[..elementSize]);
            return;
        }
        if (outputDims.Any(d => d == 0))
        {
            return;
        }
        var strides = new long[rank];
        strides[rank - 1] = 1;
        for (int a = rank - 2; a >= 0; a--)
        {
            strides[a] = strides[a + 1] * sourceDims[a + 1];
        }
        var runs = Runs(index[rank - 1], outputDims[rank - 1]);
        int filled = 0;
        // Into a file, the runs go to the kernel as they lie in the converted bytes (one pwritev a block's worth): the
        // output is copied once, by the write, instead of once into the block and again by the write.
        var pieces = FileCopy.CanWriteGathered(destination) ? new List<ReadOnlyMemory<byte>>() : null;
        var at = new long[rank - 1];
        while (true)
        {
            long row = 0;
            for (int a = 0; a < rank - 1; a++)
            {
                row += (index[a] is { } m ? m[at[a]] : at[a]) * strides[a];
            }
            foreach (var (start, length) in runs)
            {
                var piece = converted.Slice(checked((int)((row + start) * elementSize)), checked((int)(length * elementSize)));
                if (pieces is not null)
                {
                    pieces.Add(piece);
                    filled += piece.Length;
                    if (filled >= block.Length)
                    {
                        FileCopy.WriteGathered(destination, pieces, filled);
                        pieces.Clear();
                        filled = 0;
                    }
                    continue;
                }
                var from = piece.Span;
                while (!from.IsEmpty)
                {
                    int n = Math.Min(from.Length, block.Length - filled);
                    from[..n].CopyTo(block[filled..]);
                    from = from[n..];
                    filled += n;
                    if (filled == block.Length)
                    {
                        destination.Write(block);
                        filled = 0;
                    }
                }
            }
            int k = rank - 2;
            while (k >= 0 && ++at[k] == outputDims[k])
            {
                at[k--] = 0;
            }
            if (k < 0)
            {
                break;
            }
        }
        if (pieces is not null)
        {
            FileCopy.WriteGathered(destination, pieces, filled);
            return;
        }
        destination.Write(block[..filled]);
    }

    /// <summary>
    /// Writes a constant output: <paramref name="value"/> (one element's bytes) repeated over every element, through
    /// <paramref name="block"/>.
    /// </summary>
    public void WriteConstant(ReadOnlySpan<byte> value, Stream destination, Span<byte> block)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (value.IsEmpty || block.Length < value.Length)
        {
            throw new ArgumentException($"A block of {block.Length} bytes cannot hold an element of {value.Length}.", nameof(block));
        }
        long total = _outputDims.Aggregate(1L, (a, b) => a * b) * value.Length;
        int usable = block.Length / value.Length * value.Length;
        for (int i = 0; i < usable; i += value.Length)
        {
            value.CopyTo(block[i..]);
        }
        for (long left = total; left > 0; left -= usable)
        {
            destination.Write(block[..(int)Math.Min(left, usable)]);
        }
    }

    /// <summary>Trailing axes that are all unchanged merged into one, so that their elements are copied as one run.</summary>
    private (long[] Source, long[] Output, long[]?[] Index) Collapsed()
    {
        int rank = _outputDims.Length;
        int keep = rank;
        while (keep >= 2 && _index[keep - 1] is null && _index[keep - 2] is null)
        {
            keep--;
        }
        if (keep == rank)
        {
            return (_sourceDims, _outputDims, _index);
        }
        long tail = 1;
        for (int a = keep - 1; a < rank; a++)
        {
            tail *= _outputDims[a];
        }
        var s = _sourceDims.Take(keep).ToArray();
        var o = _outputDims.Take(keep).ToArray();
        s[keep - 1] = o[keep - 1] = tail;
        return (s, o, _index.Take(keep).ToArray());
    }

    /// <summary>The last axis as runs of consecutive source elements: (first source index, length), in output order.</summary>
    private static List<(long Start, long Length)> Runs(long[]? map, long size)
    {
        if (map is null)
        {
            return [(0, size)];
        }
        var runs = new List<(long, long)>();
        long start = map[0], length = 1;
        for (long j = 1; j < size; j++)
        {
            if (map[j] == start + length)
            {
                length++;
                continue;
            }
            runs.Add((start, length));
            (start, length) = (map[j], 1);
        }
        runs.Add((start, length));
        return runs;
    }
}
