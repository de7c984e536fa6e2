using CsCheck;
using Graft.Checkpoints;
using Graft.Transformers;
using Graft.Transforms;

namespace Graft.Tests.Transforms;

/// <summary>
/// The executor's streaming path for chains that only move and scale values (<see cref="GatherChain"/>) against the
/// step-by-step path it replaces (<see cref="Twins.RunSteps{T}"/>: decode, each step's twin, encode), byte for byte,
/// NaN payloads included, on random bits of float16, bfloat16, float32 and float64, any target dtype, and HyperCloning's
/// divisions by 2, 3 and 4 (exact or not: both paths round the same products the same way).
/// </summary>
public sealed class GatherChainTests
{
    private static readonly DType[] FloatTypes = [DType.F16, DType.BF16, DType.F32, DType.F64];

    private static Gen<T> Pick<T>(params T[] values) => Gen.Int[0, values.Length - 1].Select(i => values[i]);

    /// <summary>The factors a copy step applies: none, HyperCloning's 1/k for k = 2, 3, 4, and others.</summary>
    private static readonly Gen<double> Scales = Pick(1.0, 1.0, 1.0 / 2, 1.0 / 3, 1.0 / 4, 2.0, -0.75, 1e-30);

    /// <summary>A copy step on <paramref name="shape"/>: a random axis, a block size dividing it, each output block a random source block.</summary>
    private static Gen<WeightTransform> CopyStep(Shape shape) =>
        Gen.Select(Gen.Int[0, shape.Rank - 1], Gen.Int, Gen.Int[1, 6], Scales).SelectMany((axis, pick, blocks, scale) =>
        {
            long size = shape[axis];
            var divisors = Enumerable.Range(1, (int)size).Where(d => size % d == 0).ToArray();
            long blockSize = divisors[Math.Abs(pick % divisors.Length)];
            long sourceBlocks = size / blockSize;
            return Gen.Int[0, (int)sourceBlocks - 1].Array[blocks].Select(sources => (WeightTransform)new BlockMap(
                "tile", "test", axis, blockSize, sourceBlocks, sources.Select(b => new[] { b }).ToArray(), scale));
        });

    /// <summary>A fused projection's part (Phi-3's <c>split</c>): a random run of rows of axis 0.</summary>
    private static Gen<WeightTransform> SplitStep(Shape shape) =>
        Gen.Int[0, (int)shape[0] - 1].SelectMany(start => Gen.Int[1, (int)shape[0] - start].Select(count =>
            (WeightTransform)new SplitRows("part", start, count, shape[0])));

    /// <summary>None (a bare cast) to three steps, each a copy step on the shape so far or (rarely) a zeroing.</summary>
    private static Gen<List<WeightTransform>> Steps(Shape input) => Gen.Int[0, 3].SelectMany(n => StepsFrom(input, n));

    private static Gen<List<WeightTransform>> StepsFrom(Shape shape, int n) => n == 0
        ? Gen.Const(new List<WeightTransform>())
        : Gen.Frequency((6, CopyStep(shape)), (1, Gen.Const<WeightTransform>(ZeroWeights.Instance)), (2, SplitStep(shape)))
            .SelectMany(step => StepsFrom(step.OutputShape(shape), n - 1).Select(rest => rest.Prepend(step).ToList()));

    /// <summary>Random bits of every kind (NaNs with payloads, infinities, subnormals, ties), or ordinary numbers.</summary>
    private static Gen<byte[]> Values(DType dtype, long elements) => Gen.Frequency(
        (2, Gen.Byte.Array[(int)(elements * dtype.ElementSize())]),
        (1, Gen.Float[-4f, 4f].Array[(int)elements].Select(v => Twins.Encode<float>(v, dtype))));

    private sealed record Case(Shape Shape, DType From, DType To, bool Wide, List<WeightTransform> Steps, byte[] Bytes, int Block)
    {
        public override string ToString() =>
            $"{Shape} {From}→{To} in {(Wide ? "f64" : "f32")}, block {Block}: {string.Join("; then ", Steps.Select(s => s.Describe()))}";
    }

    private static readonly Gen<Case> Cases =
        Gen.Select(Gen.Long[1, 5].Array[0, 3], Pick(FloatTypes), Pick(FloatTypes), Gen.Bool, Gen.Int[8, 96])
            .SelectMany((dims, from, to, wide, block) =>
            {
                var shape = new Shape(dims);
                // Rank 0 has no axis to copy along: only a zeroing (or nothing but the cast) applies.
                var steps = shape.Rank == 0
                    ? Gen.Frequency((1, Gen.Const(new List<WeightTransform>())), (1, Gen.Const(new List<WeightTransform> { ZeroWeights.Instance })))
                    : Steps(shape);
                return Gen.Select(steps, Values(from, shape.ElementCount)).Select((s, bytes) => new Case(shape, from, to, wide, s, bytes, block));
            });

    private static byte[] Gathered<T>(Case c) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var gather = GatherChain.TryCompose(c.Steps, c.Shape) ?? throw new InvalidOperationException($"{c}: not composed as a gather");
        var block = new byte[c.Block];
        using var output = new MemoryStream();
        if (gather.IsConstant)
        {
            gather.WriteConstant(gather.ConstantValue<T>(c.To), output, block);
            return output.ToArray();
        }
        long n = c.Shape.ElementCount;
        var buffer = new byte[n * Math.Max(c.From.ElementSize(), c.To.ElementSize())];
        c.Bytes.CopyTo(buffer, 0);
        gather.ConvertInPlace<T>(buffer, n, c.From, c.To);
        gather.Write(buffer, c.To.ElementSize(), output, block);
        return output.ToArray();
    }

    [Fact]
    public void Gather_CopyAndScaleChains_SameBytesAsStepByStep()
    {
        Cases.Sample(c =>
        {
            var expected = c.Wide
                ? Twins.RunSteps<double>(c.Bytes, c.From, c.Shape, c.Steps, c.To)
                : Twins.RunSteps<float>(c.Bytes, c.From, c.Shape, c.Steps, c.To);
            var actual = c.Wide ? Gathered<double>(c) : Gathered<float>(c);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"{c}: step by step {Convert.ToHexString(expected)}, gathered {Convert.ToHexString(actual)}");
        }, iter: 400);
    }

    /// <summary>The transformer's width chain as planned (rows tiled, then columns tiled and halved), on a bf16 matrix.</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Gather_HyperCloningTiles_SameBytesAsStepByStep(int k)
    {
        var shape = new Shape(6, 4);
        var rows = new BlockMap("tile", "rows", 0, 2, 3, Enumerable.Range(0, 3 * k).Select(i => new[] { i % 3 }).ToArray());
        var columns = new BlockMap("tile", "columns", 1, 1, 4, Enumerable.Range(0, 4 * k).Select(i => new[] { i % 4 }).ToArray(), 1.0 / k);
        var bytes = new byte[shape.ElementCount * 2];
        new Random(k).NextBytes(bytes);
        foreach (var to in FloatTypes)
        {
            var c = new Case(shape, DType.BF16, to, false, [rows, columns], bytes, 4096);
            Assert.Equal(Twins.RunSteps<float>(bytes, DType.BF16, shape, c.Steps, to), Gathered<float>(c));
        }
    }

    [Fact]
    public void TryCompose_GroupMean_IsNotAGather()
    {
        var mean = new BlockMap("heads.group-mean", "test", 0, 2, 4, [[0, 1], [2, 3]]);
        Assert.Null(GatherChain.TryCompose([mean], new Shape(8, 3)));
    }
}
