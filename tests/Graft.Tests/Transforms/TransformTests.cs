using CsCheck;
using Graft.Checkpoints;
using Graft.Transforms;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Graft.Tests.Transforms;

public class SelectChannelsTests
{
    private static Tensor Arange(params long[] shape) => arange(shape.Aggregate(1L, (a, b) => a * b), dtype: ScalarType.Float32).reshape(shape);

    [Fact]
    public void KeepFirst_Conv2dWeight_TruncatesOutAxisNotKernelWidth()
    {
        // The seed text slices axis -1 (the kernel width in PyTorch layout). Graft must slice axis 0.
        using var w = Arange(64, 3, 3, 3);
        var t = OutChannels.KeepFirst(Layout.Conv(2), 64, 32);
        using var y = t.Apply(w);
        Assert.Equal(new long[] { 32, 3, 3, 3 }, y.shape);
        TensorAssert.Close(w.narrow(0, 0, 32), y, 0, 0);
        Assert.Equal("out.truncate", t.Op);
    }

    [Fact]
    public void KeepFirst_ConvTransposeWeight_UsesAxisOne()
    {
        using var w = Arange(4, 6, 3, 3); // (in, out, k, k)
        using var y = OutChannels.KeepFirst(Layout.ConvTranspose(2), 6, 2).Apply(w);
        Assert.Equal(new long[] { 4, 2, 3, 3 }, y.shape);
        TensorAssert.Close(w.narrow(1, 0, 2), y, 0, 0);
    }

    [Fact]
    public void KeepFirst_GroupedConv_KeepsFirstChannelsOfEachGroup()
    {
        using var w = Arange(6, 2, 1, 1); // groups=3, two out channels each
        var t = OutChannels.KeepFirst(Layout.Conv(2, groups: 3), 6, 3);
        using var y = t.Apply(w);
        // Group g keeps its first channel: source channels 0, 2, 4.
        TensorAssert.Equal([0, 1, 4, 5, 8, 9], y);
    }

    [Fact]
    public void Pad_WithTemplate_NewChannelsKeepTemplateValues()
    {
        using var w = ones(2, 1, 1, 1);
        using var template = full(new long[] { 4, 1, 1, 1 }, 7f);
        var t = OutChannels.KeepFirst(Layout.Conv(2), 2, 4, ChannelFill.FromTemplate(template));
        using var y = t.Apply(w);
        TensorAssert.Equal([1, 1, 7, 7], y);
        Assert.Equal(Introduced.Template, t.Introduces);
    }

    [Fact]
    public void Pad_Zeros_AddsZeroChannelsAtTheEnd()
    {
        using var b = tensor(new float[] { 3, 4 });
        using var y = OutChannels.KeepFirst(Layout.Vector, 2, 3, ChannelFill.Zeros).Apply(b);
        TensorAssert.Equal([3, 4, 0], y);
    }

    [Fact]
    public void Pad_KaimingNormal_HasFanOutStdAndIsDeterministic()
    {
        using var w = zeros(1, 64, 3, 3);
        var t = OutChannels.KeepFirst(Layout.Conv(2), 1, 256, ChannelFill.KaimingNormal(seed: 5));
        using var a = t.Apply(w);
        using var b = t.Apply(w);
        TensorAssert.Close(a, b, 0, 0);
        using var fresh = a.narrow(0, 1, 255);
        double std = fresh.std().item<float>();
        double expected = Math.Sqrt(2.0 / (256 * 9)); // fan_out = out × kh × kw
        Assert.InRange(std, expected * 0.95, expected * 1.05);
    }

    [Fact]
    public void Cyclic_CopiesSourceChannels()
    {
        using var b = tensor(new float[] { 1, 2 });
        using var y = OutChannels.Apply(Layout.Vector, ChannelMap.Cyclic(2, 5), ChannelFill.Zeros).Apply(b);
        TensorAssert.Equal([1, 2, 1, 2, 1], y);
    }

    [Fact]
    public void LargestNorm_L1AndL2_PickHandComputedChannelsInOrder()
    {
        // Channel norms: c0 L1=4 L2²=16 (one 4); c1 L1=3 L2²=3 (three 1s); c2 L1=5 L2²=9 (3, 2); c3 L1=1.
        using var w = tensor(new float[] { 4, 0, 0, 1, 1, 1, 3, 2, 0, 1, 0, 0 }).reshape(4, 3);
        var l1 = ChannelMap.LargestNorm(w, Layout.Linear, 2, ChannelNorm.L1);
        var l2 = ChannelMap.LargestNorm(w, Layout.Linear, 2, ChannelNorm.L2);
        Assert.Equal(new long[] { 0, 2 }, l1.ToArray());
        Assert.Equal(new long[] { 0, 2 }, l2.ToArray());
        var l1of3 = ChannelMap.LargestNorm(w, Layout.Linear, 3, ChannelNorm.L1);
        var l2of3 = ChannelMap.LargestNorm(w, Layout.Linear, 3, ChannelNorm.L2);
        Assert.Equal(new long[] { 0, 1, 2 }, l1of3.ToArray());
        Assert.Equal(new long[] { 0, 1, 2 }, l2of3.ToArray());
        using var y = OutChannels.Apply(Layout.Linear, l1, ChannelFill.Zeros).Apply(w);
        TensorAssert.Equal([4, 0, 0, 3, 2, 0], y);
    }

    [Fact]
    public void OutputShape_WrongChannelCount_NamesBothShapes()
    {
        var t = OutChannels.KeepFirst(Layout.Conv(2), 64, 32);
        var ex = Assert.Throws<ArgumentException>(() => t.OutputShape(new Shape(48, 3, 3, 3)));
        Assert.Contains("(48, 3, 3, 3)", ex.Message);
        Assert.Contains("64", ex.Message);
    }

    [Fact]
    public void ExpandBlocks_MapsChannelsToFlattenedFeatures()
    {
        var m = ChannelMap.FromIndices(3, [2, -1]).ExpandBlocks(2);
        Assert.Equal(new long[] { 4, 5, -1, -1 }, m.ToArray());
    }
}

public class InChannelsTests
{
    [Fact]
    public void Sum_ToOne_AddsTheInputChannels()
    {
        using var w = tensor(new float[] { 1, 2, 3, 10, 20, 30 }).reshape(2, 3, 1, 1);
        using var y = InChannels.Sum(Layout.Conv(2), 3, 1).Apply(w);
        TensorAssert.Equal([6, 60], y);
    }

    [Fact]
    public void Mean_FoldsModuloTarget()
    {
        // 4 inputs into 2: j=0 ← {0, 2}, j=1 ← {1, 3}
        using var w = tensor(new float[] { 1, 2, 3, 6 }).reshape(1, 4);
        using var y = InChannels.Mean(Layout.Linear, 4, 2).Apply(w);
        TensorAssert.Equal([2, 4], y);
    }

    [Fact]
    public void RepeatRescale_ThreeToSeven_RepeatsCyclicallyAndScales()
    {
        using var w = tensor(new float[] { 7, 14, 21 }).reshape(1, 3, 1, 1);
        using var y = InChannels.RepeatRescale(Layout.Conv(2), 3, 7).Apply(w);
        var s = 3f / 7f;
        TensorAssert.Close(tensor(new[] { 7 * s, 14 * s, 21 * s, 7 * s, 14 * s, 21 * s, 7 * s }).reshape(1, 7, 1, 1), y);
    }

    [Fact]
    public void RepeatRescale_AnySourceCount_KeepsActivationsOnRepeatedInput()
    {
        // Property: for source count s and target k·s, conv(W', [x]*k) = conv(W, x).
        Gen.Select(Gen.Int[1, 5], Gen.Int[2, 4], Gen.Int[1, 4], Gen.Int[0, 1000])
            .Sample((s, k, o, seed) =>
            {
                using var scope = NewDisposeScope();
                using var g = new Generator((ulong)seed);
                var w = randn(new long[] { o, s, 3, 3 }, dtype: ScalarType.Float64, generator: g);
                var x = randn(new long[] { 1, s, 6, 6 }, dtype: ScalarType.Float64, generator: g);
                var w2 = InChannels.RepeatRescale(Layout.Conv(2), s, s * k).Apply(w);
                var x2 = cat(Enumerable.Repeat(x, k).ToArray(), 1);
                TensorAssert.Close(F.conv2d(x, w), F.conv2d(x2, w2), 1e-10, 1e-10);
            }, iter: 25);
    }

    [Fact]
    public void ZeroExtend_ExtraInputsAreIgnored()
    {
        Gen.Select(Gen.Int[1, 4], Gen.Int[1, 4], Gen.Int[0, 1000])
            .Sample((s, extra, seed) =>
            {
                using var scope = NewDisposeScope();
                using var g = new Generator((ulong)seed);
                var w = randn(new long[] { 2, s, 3, 3 }, dtype: ScalarType.Float64, generator: g);
                var x = randn(new long[] { 1, s, 5, 5 }, dtype: ScalarType.Float64, generator: g);
                var noise = randn(new long[] { 1, extra, 5, 5 }, dtype: ScalarType.Float64, generator: g) * 100;
                var w2 = InChannels.ZeroExtend(Layout.Conv(2), s, s + extra).Apply(w);
                TensorAssert.Close(F.conv2d(x, w), F.conv2d(cat([x, noise], 1), w2), 1e-12, 1e-12);
            }, iter: 25);
    }

    [Fact]
    public void Truncate_KeepsFirstInputs()
    {
        using var w = tensor(new float[] { 1, 2, 3, 4 }).reshape(1, 4);
        using var y = InChannels.Truncate(Layout.Linear, 4, 2).Apply(w);
        TensorAssert.Equal([1, 2], y);
    }

    [Fact]
    public void Follow_NewInputsGetZeroWeights()
    {
        var map = ChannelMap.FromIndices(3, [2, 0, -1]);
        using var w = tensor(new float[] { 1, 2, 3 }).reshape(1, 3);
        using var y = InChannels.Follow(Layout.Linear, map).Apply(w);
        TensorAssert.Equal([3, 1, 0], y);
    }

    [Fact]
    public void RepeatRescale_Shrinking_IsRefusedWithAHint()
    {
        var ex = Assert.Throws<ArgumentException>(() => InChannels.RepeatRescale(Layout.Conv(2), 6, 3));
        Assert.Contains("sum, mean or truncate", ex.Message);
    }

    [Fact]
    public void RepeatRescale_GradientReachesSource()
    {
        using var w = ones(new long[] { 1, 2, 1, 1 }, requires_grad: true);
        using var y = InChannels.RepeatRescale(Layout.Conv(2), 2, 4).Apply(w);
        y.sum().backward();
        // Each source input appears twice, each time scaled by 1/2.
        TensorAssert.Equal([1, 1], w.grad!);
    }
}

public class KernelTests
{
    [Fact]
    public void CenterFit_ThreeToFive_PadsOneZeroEachSide()
    {
        using var w = ones(1, 1, 3, 3);
        using var y = Kernel.CenterFit(Layout.Conv(2), [5, 5]).Apply(w);
        Assert.Equal(new long[] { 1, 1, 5, 5 }, y.shape);
        Assert.Equal(9f, y.sum().item<float>());
        Assert.Equal(0f, y[0, 0, 0].sum().item<float>());
        Assert.Equal(0f, y[0, 0, .., 4].sum().item<float>());
        Assert.Equal(1f, y[0, 0, 2, 2].item<float>());
    }

    [Fact]
    public void CenterFit_FiveToThree_CropsTheCentre()
    {
        using var w = arange(25, dtype: ScalarType.Float32).reshape(1, 1, 5, 5);
        using var y = Kernel.CenterFit(Layout.Conv(2), [3, 3]).Apply(w);
        TensorAssert.Equal([6, 7, 8, 11, 12, 13, 16, 17, 18], y);
    }

    [Fact]
    public void CenterFit_PadThenCrop_IsIdentity()
    {
        Gen.Select(Gen.Int[1, 5], Gen.Int[1, 5], Gen.Int[0, 4], Gen.Int[0, 4])
            .Sample((kh, kw, dh, dw) =>
            {
                using var scope = NewDisposeScope();
                var w = randn(new long[] { 2, 3, kh, kw });
                var padded = Kernel.CenterFit(Layout.Conv(2), [kh + dh, kw + dw]).Apply(w);
                var back = Kernel.CenterFit(Layout.Conv(2), [kh, kw]).Apply(padded);
                TensorAssert.Close(w, back, 0, 0);
            }, iter: 40);
    }

    [Fact]
    public void CenterFit_PadWithMatchingPadding_KeepsConvOutputs()
    {
        // Odd kernels grown by 2p with conv padding increased by p compute the same function.
        Gen.Select(Gen.Int[0, 2], Gen.Int[1, 3], Gen.Int[0, 1000])
            .Sample((half, p, seed) =>
            {
                using var scope = NewDisposeScope();
                using var g = new Generator((ulong)seed);
                long k = 2 * half + 1;
                var w = randn(new long[] { 3, 2, k, k }, dtype: ScalarType.Float64, generator: g);
                var x = randn(new long[] { 1, 2, 7, 7 }, dtype: ScalarType.Float64, generator: g);
                var w2 = Kernel.CenterFit(Layout.Conv(2), [k + 2 * p, k + 2 * p]).Apply(w);
                TensorAssert.Close(F.conv2d(x, w, padding: [half, half]), F.conv2d(x, w2, padding: [half + p, half + p]), 1e-12, 1e-12);
            }, iter: 20);
    }

    [Fact]
    public void CenterFit_Conv1dAndConv3d_UseTheirKernelAxes()
    {
        using var w1 = ones(2, 2, 3);
        Assert.Equal(new long[] { 2, 2, 5 }, Kernel.CenterFit(Layout.Conv(1), [5]).Apply(w1).shape);
        using var w3 = ones(new long[] { 2, 2, 3, 3, 3 });
        Assert.Equal(new long[] { 2, 2, 1, 5, 3 }, Kernel.CenterFit(Layout.Conv(3), [1, 5, 3]).Apply(w3).shape);
    }

    [Fact]
    public void Resize_Bilinear_ConstantKernelStaysConstant()
    {
        using var w = full(new long[] { 2, 3, 3, 3 }, 0.5f);
        using var y = Kernel.Resize(Layout.Conv(2), [7, 7]).Apply(w);
        TensorAssert.Close(full(new long[] { 2, 3, 7, 7 }, 0.5f), y, 1e-6);
        using var yc = Kernel.Resize(Layout.Conv(2), [5, 5], KernelResize.Bicubic).Apply(w);
        Assert.Equal(new long[] { 2, 3, 5, 5 }, yc.shape);
        TensorAssert.Close(full(new long[] { 2, 3, 5, 5 }, 0.5f), yc, 1e-6);   // cubic weights sum to 1
    }

    /// <summary>
    /// An independent bicubic resize (Keys' cubic convolution, a = −0.75, corners not aligned, border taps clamped: what
    /// PyTorch's upsample_bicubic2d computes), one axis at a time, in float64.
    /// </summary>
    private static double[,] BicubicReference(double[,] x, int rows, int cols)
    {
        static double W(double d)
        {
            const double a = -0.75;
            d = Math.Abs(d);
            return d <= 1 ? ((a + 2) * d - (a + 3)) * d * d + 1 : d < 2 ? ((a * d - 5 * a) * d + 8 * a) * d - 4 * a : 0;
        }
        static double[] Resize1d(double[] v, int n)
        {
            var r = new double[n];
            for (int j = 0; j < n; j++)
            {
                double src = (j + 0.5) * v.Length / n - 0.5;
                int i0 = (int)Math.Floor(src);
                for (int k = -1; k <= 2; k++)
                {
                    r[j] += W(src - (i0 + k)) * v[Math.Clamp(i0 + k, 0, v.Length - 1)];
                }
            }
            return r;
        }
        int h = x.GetLength(0), w = x.GetLength(1);
        var tmp = new double[h, cols];
        for (int i = 0; i < h; i++)
        {
            var row = Resize1d(Enumerable.Range(0, w).Select(j => x[i, j]).ToArray(), cols);
            for (int j = 0; j < cols; j++) { tmp[i, j] = row[j]; }
        }
        var y = new double[rows, cols];
        for (int j = 0; j < cols; j++)
        {
            var col = Resize1d(Enumerable.Range(0, h).Select(i => tmp[i, j]).ToArray(), rows);
            for (int i = 0; i < rows; i++) { y[i, j] = col[i]; }
        }
        return y;
    }

    [Theory]
    [InlineData(3, 5, 7)]
    [InlineData(5, 3, 4)]
    public void Resize_Bicubic_EqualsAnIndependentBicubic(int size, int rows, int cols)
    {
        using var g = new Generator(12);
        using var w = randn(new long[] { 2, 3, size, size }, dtype: ScalarType.Float64, generator: g);
        using var y = Kernel.Resize(Layout.Conv(2), [rows, cols], KernelResize.Bicubic).Apply(w);
        var values = w.contiguous().data<double>().ToArray();
        var expected = new double[2 * 3 * rows * cols];
        for (int f = 0; f < 6; f++)
        {
            var x = new double[size, size];
            for (int i = 0; i < size; i++) { for (int j = 0; j < size; j++) { x[i, j] = values[(f * size + i) * size + j]; } }
            var r = BicubicReference(x, rows, cols);
            for (int i = 0; i < rows; i++) { for (int j = 0; j < cols; j++) { expected[(f * rows + i) * cols + j] = r[i, j]; } }
        }
        using var e = tensor(expected, dtype: ScalarType.Float64).reshape(2, 3, rows, cols);
        TensorAssert.Close(e, y, 1e-12, 1e-12);
    }

    [Fact]
    public void PIResize_Growing_PreservesInnerProductWithResizedInputs()
    {
        // ⟨resize(x), w'⟩ = ⟨x, w⟩: a patch embedding sees resized patches exactly as the old one saw the originals.
        using var g = new Generator(11);
        using var w = randn(new long[] { 4, 3, 4, 4 }, dtype: ScalarType.Float64, generator: g);
        using var x = randn(new long[] { 5, 3, 4, 4 }, dtype: ScalarType.Float64, generator: g);
        using var w2 = Kernel.PIResize(Layout.Conv(2), [6, 6]).Apply(w);
        using var x2 = F.interpolate(x, size: [6, 6], mode: InterpolationMode.Bilinear, align_corners: false);
        using var before = F.conv2d(x, w);   // 4×4 kernel on a 4×4 patch: one output per filter
        using var after = F.conv2d(x2, w2);
        TensorAssert.Close(before, after, 1e-9, 1e-9);
    }

    [Fact]
    public void PIResize_SameSize_IsIdentity()
    {
        using var w = randn(2, 2, 3, 3);
        TensorAssert.Close(w, Kernel.PIResize(Layout.Conv(2), [3, 3]).Apply(w), 0, 0);
    }

    [Fact]
    public void Reinit_KaimingNormal_IgnoresInputAndHasFanOutStd()
    {
        var shape = new Shape(64, 6, 5, 5);
        using var y = Reinit.KaimingNormal(shape, 3).Apply(zeros(32, 3, 3, 3));
        Assert.Equal(shape.ToArray(), y.shape);
        double expected = Math.Sqrt(2.0 / (64 * 25));
        Assert.InRange(y.std().item<float>(), expected * 0.95, expected * 1.05);
    }
}

public class CompositionTests
{
    [Fact]
    public void Chain_ComposesShapesAndOps()
    {
        var t = InChannels.RepeatRescale(Layout.Conv(2), 3, 6)
            .Then(Kernel.CenterFit(Layout.Conv(2), [5, 5]))
            .Then(OutChannels.KeepFirst(Layout.Conv(2), 32, 64));
        Assert.Equal(new Shape(64, 6, 5, 5), t.OutputShape(new Shape(32, 3, 3, 3)));
        Assert.Equal("in.repeat-rescale+kernel.fit+out.pad", t.Op);
        using var y = t.Apply(randn(32, 3, 3, 3));
        Assert.Equal(new long[] { 64, 6, 5, 5 }, y.shape);
    }

    [Fact]
    public void Chain_IncompatibleStep_FailsBeforeData()
    {
        var t = OutChannels.KeepFirst(Layout.Conv(2), 32, 16).Then(OutChannels.KeepFirst(Layout.Conv(2), 32, 8));
        var ex = Assert.Throws<ArgumentException>(() => t.OutputShape(new Shape(32, 3, 3, 3)));
        Assert.Contains("(16, 3, 3, 3)", ex.Message);
    }

    [Fact]
    public void Square_IsDifferentiable()
    {
        using var w = tensor(new[] { 1.5, -2.0 }, requires_grad: true);
        using var y = ElementWise.Square.Apply(w);
        y.sum().backward();
        Assert.Equal(new[] { 3.0, -4.0 }, w.grad!.data<double>().ToArray());
    }
}
