using System.Numerics;
using System.Runtime.InteropServices;
using CsCheck;
using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Tests.Transforms;

/// <summary>
/// Every managed twin against its TorchSharp original on random shapes, layouts, sizes, dtypes and values: bit for bit
/// for data movement, scaling and casts (a NaN only has to stay a NaN), and within the stated bound for channel sums
/// (bit for bit on the stems the default policy folds).
/// </summary>
public sealed class TwinTests
{
    private static readonly DType[] FloatTypes = [DType.F16, DType.BF16, DType.F32, DType.F64];

    private static Gen<T> Pick<T>(params T[] values) => Gen.Int[0, values.Length - 1].Select(i => values[i]);

    /// <summary>float32 values of every kind: random bits (all exponents, subnormals, infinities, NaNs), ordinary
    /// numbers, and exact float16/bfloat16 rounding ties.</summary>
    private static readonly Gen<float> AnyFloat = Gen.Frequency(
        (3, Gen.UInt.Select(BitConverter.UInt32BitsToSingle)),
        (3, Gen.Float[-4f, 4f]),
        (1, Gen.UInt.Select(b => BitConverter.UInt32BitsToSingle((b & 0xFFFF0000u) | 0x8000u))),
        (1, Gen.UInt.Select(b => BitConverter.UInt32BitsToSingle((b & 0xFFFFE000u) | 0x1000u))),
        (1, Pick(0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, 65504f, 65520f, 1e-40f)));

    private static readonly Gen<double> AnyDouble = Gen.Frequency(
        (2, Gen.ULong.Select(BitConverter.UInt64BitsToDouble)),
        (2, AnyFloat.Select(f => (double)f)),
        // A double just off a float's rounding tie: rounding it twice (to float, then to half) is what libtorch does.
        (1, AnyFloat.Select(f => BitConverter.UInt64BitsToDouble(BitConverter.DoubleToUInt64Bits(f) + 1))));

    private static byte[] Bytes<T>(T[] values) where T : unmanaged => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static Tensor FromBytes(byte[] bytes, DType dtype, long[] shape)
    {
        var t = empty(shape, dtype: TensorBridge.ToScalarType(dtype)!.Value);
        if (bytes.Length > 0)
        {
            bytes.CopyTo(t.bytes);
        }
        return t;
    }

    private static bool IsNaN(ReadOnlySpan<byte> element, DType dtype) => dtype switch
    {
        DType.F16 => Half.IsNaN(MemoryMarshal.Read<Half>(element)),
        DType.BF16 => float.IsNaN(BitConverter.UInt32BitsToSingle((uint)MemoryMarshal.Read<ushort>(element) << 16)),
        DType.F32 => float.IsNaN(MemoryMarshal.Read<float>(element)),
        _ => double.IsNaN(MemoryMarshal.Read<double>(element)),
    };

    /// <summary>Bit for bit, except that a NaN only has to meet a NaN.</summary>
    private static void AssertSameBits(byte[] expected, byte[] actual, DType dtype, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        int size = dtype.ElementSize();
        for (int i = 0; i < expected.Length; i += size)
        {
            var e = expected.AsSpan(i, size);
            var a = actual.AsSpan(i, size);
            if (!e.SequenceEqual(a) && !(IsNaN(e, dtype) && IsNaN(a, dtype)))
            {
                Assert.Fail($"{what}: element {i / size} differs: libtorch {Convert.ToHexString(e)}, twin {Convert.ToHexString(a)}");
            }
        }
    }

    [Fact]
    public void Cast_EveryPairOfFloatTypes_MatchesLibTorchBitForBit()
    {
        Gen.Select(Pick(FloatTypes), Pick(FloatTypes), Gen.Int[0, 300]).SelectMany((from, to, n) =>
                (from == DType.F64 ? AnyDouble.Array[n].Select(Bytes) : AnyFloat.Array[n].Select(v => Twins.Encode<float>(v, from)))
                .Select(bytes => (from, to, bytes)))
            .Sample(c =>
            {
                using var scope = NewDisposeScope();
                var shape = new long[] { c.bytes.Length / c.from.ElementSize() };
                var expected = TensorBridge.ToBytes(FromBytes(c.bytes, c.from, shape).to(TensorBridge.ToScalarType(c.to)!.Value));
                AssertSameBits(expected, Twins.Cast(c.bytes, c.from, c.to), c.to, $"{c.from}→{c.to}");
            }, iter: 300);
    }

    /// <summary>A weight layout and a shape for it with the given in/out sizes.</summary>
    private sealed record Case(Layout Layout, long[] Shape, bool Double, int Seed)
    {
        public override string ToString() => $"{Layout} {string.Join("×", Shape)} {(Double ? "f64" : "f32")} seed {Seed}";
    }

    private static readonly Gen<Layout> GenLayout = Pick(Layout.Conv(1), Layout.Conv(2), Layout.Conv(3), Layout.ConvTranspose(2), Layout.Linear);

    private static Gen<Case> GenCase(Gen<Layout> layouts) => Gen.Select(layouts, Gen.Long[1, 9].Array[5], Gen.Bool, Gen.Int).Select((l, dims, dbl, seed) =>
        new Case(l, dims.Take(l.Rank).ToArray(), dbl, seed));

    /// <summary>Values for a case, from its seed: ordinary numbers, or (special) numbers of every kind as <see cref="AnyFloat"/>.</summary>
    private static Tensor Values(Case c, bool special)
    {
        var n = (int)c.Shape.Aggregate(1L, (a, b) => a * b);
        var random = new Random(c.Seed);
        double Next() => random.Next(8) switch
        {
            _ when !special => random.NextDouble() * 4 - 2,
            0 => BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32)),
            1 => BitConverter.UInt32BitsToSingle(((uint)random.NextInt64(0, 1L << 32) & 0xFFFF0000u) | 0x8000u),
            2 => random.Next(4) switch { 0 => -0.0, 1 => double.PositiveInfinity, 2 => double.NaN, _ => 1e-40 },
            3 when c.Double => BitConverter.Int64BitsToDouble(random.NextInt64()),
            _ => random.NextDouble() * 4 - 2,
        };
        var v = Enumerable.Range(0, n).Select(_ => Next()).ToArray();
        return c.Double ? tensor(v, c.Shape) : tensor(v.Select(d => (float)d).ToArray(), c.Shape);
    }

    private static byte[] Twin(WeightTransform transform, Tensor input)
    {
        var shape = new Shape(input.shape);
        return input.dtype == ScalarType.Float64
            ? Bytes(transform.ApplyTwin<double>(input.data<double>().ToArray(), shape))
            : Bytes(transform.ApplyTwin<float>(input.data<float>().ToArray(), shape));
    }

    /// <summary>Runs <paramref name="make"/>'s transform both ways on values of every kind and demands the same bits.</summary>
    /// <remarks>Every generated sample is checked: <paramref name="make"/> builds only transforms valid for the case.</remarks>
    private static void SameBits(Gen<Layout> layouts, Func<Case, long, Gen<WeightTransform>> make)
    {
        GenCase(layouts).SelectMany(c => Gen.Long[1, 9].SelectMany(n => make(c, n)).Select(t => (c, t))).Sample(x =>
        {
            Assert.True(x.t.HasTwin, x.t.Describe());
            using var scope = NewDisposeScope();
            var input = Values(x.c, special: true);
            var expected = TensorBridge.ToBytes(x.t.Apply(input));
            AssertSameBits(expected, Twin(x.t, input), x.c.Double ? DType.F64 : DType.F32, $"{x.t.Describe()} on {x.c}");
        }, iter: 200);
    }

    [Fact]
    public void InChannels_RepeatRescaleTruncateZeroExtend_MatchLibTorchBitForBit()
    {
        // n in [1, 9] picks a valid target: s … s + 8 inputs for repeat-rescale and zero-extend, 1 … s for truncate.
        SameBits(GenLayout, (c, n) =>
        {
            long s = c.Shape[c.Layout.InAxis];
            return Pick<Func<WeightTransform>>(
                    () => InChannels.RepeatRescale(c.Layout, s, s + n - 1),
                    () => InChannels.Truncate(c.Layout, s, 1 + ((n - 1) % s)),
                    () => InChannels.ZeroExtend(c.Layout, s, s + n - 1))
                .Select(f => f());
        });
    }

    [Fact]
    public void OutChannels_KeepFirstPadAndCopies_MatchLibTorchBitForBit()
    {
        var fills = Gen.Frequency((2, Gen.Const(ChannelFill.Zeros)), (1, Gen.Double[-3, 3].Select(ChannelFill.Constant)));
        SameBits(Gen.OneOf(GenLayout, Gen.Const(Layout.Vector)), (c, n) => Gen.Select(fills, Gen.Bool).Select((fill, cyclic) =>
        {
            long s = c.Shape[c.Layout.OutAxis];
            return (WeightTransform)(cyclic
                ? OutChannels.Apply(c.Layout, ChannelMap.Cyclic(s, n), fill)
                : OutChannels.KeepFirst(c.Layout, s, n, fill));
        }));
    }

    [Fact]
    public void OutChannels_GroupedKeepFirst_MatchesLibTorchBitForBit()
    {
        Gen.Select(Gen.Int[1, 4], Gen.Long[1, 4], Gen.Long[1, 4], Gen.Long[1, 3], Gen.Int).Sample((g, sg, tg, i, seed) =>
        {
            using var scope = NewDisposeScope();
            var c = new Case(Layout.Conv(2, g), [sg * g, i, 3, 3], false, seed);
            var transform = OutChannels.KeepFirst(c.Layout, sg * g, tg * g);
            var input = Values(c, special: true);
            AssertSameBits(TensorBridge.ToBytes(transform.Apply(input)), Twin(transform, input), DType.F32, $"grouped keep-first {sg}→{tg} per group on {c}");
        }, iter: 200);
    }

    [Fact]
    public void OutChannels_PadFromTemplate_MatchesLibTorchBitForBit()
    {
        GenCase(GenLayout).SelectMany(c => Gen.Long[1, 9].Select(n => (c, n))).Sample(x =>
        {
            using var scope = NewDisposeScope();
            var (c, n) = x;
            long s = c.Shape[c.Layout.OutAxis];
            var targetShape = new Shape(c.Shape).With(c.Layout.OutAxis, s + n);
            var input = Values(c, special: true);
            var template = Values(c with { Shape = targetShape.ToArray(), Seed = c.Seed + 1 }, special: true);
            var map = ChannelMap.First(s, s + n);
            var expected = TensorBridge.ToBytes(OutChannels.Apply(c.Layout, map, ChannelFill.FromTemplate(template)).Apply(input));
            var twin = OutChannels.Apply(c.Layout, map, c.Double
                ? ChannelFill.FromTemplateValues(template.data<double>().ToArray(), targetShape)
                : ChannelFill.FromTemplateValues(template.data<float>().ToArray(), targetShape));
            AssertSameBits(expected, Twin(twin, input), c.Double ? DType.F64 : DType.F32, $"template pad on {c}");
        }, iter: 200);
    }

    [Fact]
    public void KernelCenterFit_PadAndCrop_MatchesLibTorchBitForBit()
    {
        SameBits(Pick(Layout.Conv(1), Layout.Conv(2), Layout.Conv(3), Layout.ConvTranspose(2)), (c, n) =>
            Gen.Long[1, 9].Array[c.Layout.KernelAxes.Count].Select(size => (WeightTransform)Kernel.CenterFit(c.Layout, size)));
    }

    [Fact]
    public void Chain_InThenOutThenKernel_MatchesLibTorchBitForBit()
    {
        SameBits(Pick(Layout.Conv(2)), (c, n) => Gen.Long[1, 7].Select(k => (WeightTransform)Chain.Of(
            InChannels.RepeatRescale(c.Layout, c.Shape[1], c.Shape[1] + n),
            OutChannels.KeepFirst(c.Layout, c.Shape[0], n),
            Kernel.CenterFit(c.Layout, [k, k]))));
    }

    /// <summary>
    /// The stated bound of <see cref="InChannels.Sum"/>: |twin − libtorch| ≤ 2n·u·Σ|wᵢxᵢ| (u = 2⁻²⁴ in float32, 2⁻⁵³ in
    /// float64, n the inputs gathered into an output), on ordinary values.
    /// </summary>
    [Fact]
    public void InChannels_SumAndMean_WithinTheStatedBound()
    {
        // Only valid targets are generated (1 … s outputs from s inputs), so every sample is checked.
        GenCase(GenLayout).SelectMany(c => Gen.Select(Gen.Long[1, c.Shape[c.Layout.InAxis]], Gen.Bool).Select((t, mean) => (c, t, mean))).Sample(x =>
        {
            var (c, t, mean) = x;
            long s = c.Shape[c.Layout.InAxis];
            Assert.InRange(t, 1, s);
            using var scope = NewDisposeScope();
            var transform = mean ? InChannels.Mean(c.Layout, s, t) : InChannels.Sum(c.Layout, s, t);
            var input = Values(c, special: false);
            var expected = transform.Apply(input).to(ScalarType.Float64).data<double>().ToArray();
            var twin = c.Double
                ? transform.ApplyTwin<double>(input.data<double>().ToArray(), new Shape(input.shape))
                : transform.ApplyTwin<float>(input.data<float>().ToArray(), new Shape(input.shape)).Select(v => (double)v).ToArray();
            var magnitude = transform.Apply(input.abs().to(ScalarType.Float64)).data<double>().ToArray();
            double u = c.Double ? Math.Pow(2, -53) : Math.Pow(2, -24);
            long n = (s + t - 1) / t;
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.True(Math.Abs(twin[i] - expected[i]) <= 2 * n * u * magnitude[i],
                    $"{transform.Describe()} on {c}: element {i} libtorch {expected[i]:R}, twin {twin[i]:R}, bound {2 * n * u * magnitude[i]:R}");
            }
        }, iter: 300);
    }

    /// <summary>What the default policy and the timm preset fold: a 3- or 4-input stem into 1 input, in float32.</summary>
    [Fact]
    public void InChannels_StemSum_MatchesLibTorchBitForBit()
    {
        Gen.Select(Gen.Long[3, 4], Gen.Long[1, 64], Gen.Long[1, 7], Gen.Int).Sample((s, o, k, seed) =>
        {
            using var scope = NewDisposeScope();
            var c = new Case(Layout.Conv(2), [o, s, k, k], false, seed);
            var transform = InChannels.Sum(c.Layout, s, 1);
            var input = Values(c, special: false);
            AssertSameBits(TensorBridge.ToBytes(transform.Apply(input)), Twin(transform, input), DType.F32, $"stem sum on {c}");
        }, iter: 200);
    }

    [Fact]
    public void ApplyTwin_TransformWithoutTwin_Throws()
    {
        var resize = Kernel.Resize(Layout.Conv(2), [5, 5]);
        Assert.False(resize.HasTwin);
        Assert.Throws<NotSupportedException>(() => resize.ApplyTwin<float>(new float[9], new Shape(1, 1, 3, 3)));
        Assert.False(OutChannels.KeepFirst(Layout.Conv(2), 2, 4, ChannelFill.KaimingNormal(1)).HasTwin);
    }
}
