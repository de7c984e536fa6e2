using static TorchSharp.torch;

namespace Graft.Tests;

/// <summary>
/// <see cref="KerasLayout"/> against DESIGN.md's layout table, element by element: every value of the Keras tensor
/// arange(n) is its own flat index, so where a value lands says exactly which axes were swapped.
/// </summary>
public class KerasLayoutTests
{
    /// <summary>A tensor whose every element is its flat (row-major) index, as float32.</summary>
    private static Tensor Indexed(params long[] shape) => arange(shape.Aggregate(1L, (a, b) => a * b), dtype: ScalarType.Float32).reshape(shape);

    private static float At(Tensor t, params long[] index) => t[index.Select(i => TensorIndex.Single(i)).ToArray()].item<float>();

    [Fact]
    public void ConvToTorch_Conv2dKernel_IsOutInKhKw()
    {
        // Keras Conv2D kernel (kh=2, kw=3, in=4, out=5): element [h, w, i, o] has flat index ((h·3 + w)·4 + i)·5 + o.
        using var keras = Indexed(2, 3, 4, 5);
        using var torchWeight = KerasLayout.ConvToTorch(keras);
        Assert.Equal(new long[] { 5, 4, 2, 3 }, torchWeight.shape);
        Assert.True(torchWeight.is_contiguous());
        // Hand-computed: torch [o=1, i=2, h=0, w=1] is Keras [0, 1, 2, 1] = ((0·3 + 1)·4 + 2)·5 + 1 = 31.
        Assert.Equal(31f, At(torchWeight, 1, 2, 0, 1));
        // torch [o=4, i=3, h=1, w=2] is Keras [1, 2, 3, 4] = ((1·3 + 2)·4 + 3)·5 + 4 = 119, the last element.
        Assert.Equal(119f, At(torchWeight, 4, 3, 1, 2));
        for (long h = 0; h < 2; h++)
        {
            for (long w = 0; w < 3; w++)
            {
                for (long i = 0; i < 4; i++)
                {
                    for (long o = 0; o < 5; o++)
                    {
                        Assert.Equal((((((h * 3) + w) * 4) + i) * 5) + o, (long)At(torchWeight, o, i, h, w));
                    }
                }
            }
        }
    }

    [Fact]
    public void ConvToTorch_Conv1dAndConv3dKernels_MoveEveryKernelAxisBehindTheChannels()
    {
        // Conv1D (k=3, in=2, out=4) → (4, 2, 3); torch [o=3, i=1, k=2] is Keras [2, 1, 3] = (2·2 + 1)·4 + 3 = 23.
        using var k1 = KerasLayout.ConvToTorch(Indexed(3, 2, 4));
        Assert.Equal(new long[] { 4, 2, 3 }, k1.shape);
        Assert.Equal(23f, At(k1, 3, 1, 2));
        // Conv3D (kd=2, kh=1, kw=3, in=2, out=2) → (2, 2, 2, 1, 3); torch [o=1, i=0, d=1, h=0, w=2] is Keras
        // [1, 0, 2, 0, 1] = (((1·1 + 0)·3 + 2)·2 + 0)·2 + 1 = 21.
        using var k3 = KerasLayout.ConvToTorch(Indexed(2, 1, 3, 2, 2));
        Assert.Equal(new long[] { 2, 2, 2, 1, 3 }, k3.shape);
        Assert.Equal(21f, At(k3, 1, 0, 1, 0, 2));
    }

    [Fact]
    public void ConvFromTorch_IsTheInverseOfConvToTorch()
    {
        // PyTorch Conv2d weight (out=5, in=4, kh=2, kw=3) → Keras (2, 3, 4, 5); Keras [h=1, w=0, i=3, o=2] is
        // torch [2, 3, 1, 0] = ((2·4 + 3)·2 + 1)·3 + 0 = 69.
        using var weight = Indexed(5, 4, 2, 3);
        using var keras = KerasLayout.ConvFromTorch(weight);
        Assert.Equal(new long[] { 2, 3, 4, 5 }, keras.shape);
        Assert.Equal(69f, At(keras, 1, 0, 3, 2));
        using var back = KerasLayout.ConvToTorch(keras);
        Assert.Equal(weight.shape, back.shape);
        Assert.Equal(weight.data<float>().ToArray(), back.data<float>().ToArray());
        using var grouped = Indexed(3, 4, 2, 2, 5);
        using var roundTrip = KerasLayout.ConvFromTorch(KerasLayout.ConvToTorch(grouped));
        Assert.Equal(grouped.shape, roundTrip.shape);
        Assert.Equal(grouped.data<float>().ToArray(), roundTrip.data<float>().ToArray());
    }

    [Fact]
    public void ConvTransposeToTorch_KhKwOutIn_IsInOutKhKw()
    {
        // Keras Conv2DTranspose kernel (kh=2, kw=2, out=3, in=4) → PyTorch ConvTranspose2d (in=4, out=3, 2, 2);
        // torch [i=2, o=1, h=1, w=0] is Keras [1, 0, 1, 2] = ((1·2 + 0)·3 + 1)·4 + 2 = 30.
        using var t = KerasLayout.ConvTransposeToTorch(Indexed(2, 2, 3, 4));
        Assert.Equal(new long[] { 4, 3, 2, 2 }, t.shape);
        Assert.Equal(30f, At(t, 2, 1, 1, 0));
    }

    [Fact]
    public void DenseToTorch_InOut_IsOutIn()
    {
        // Keras Dense kernel (in=3, out=2) → Linear (2, 3); torch [o=1, i=2] is Keras [2, 1] = 2·2 + 1 = 5.
        using var t = KerasLayout.DenseToTorch(Indexed(3, 2));
        Assert.Equal(new long[] { 2, 3 }, t.shape);
        Assert.True(t.is_contiguous());
        Assert.Equal(5f, At(t, 1, 2));
        Assert.Equal(new float[] { 0, 2, 4, 1, 3, 5 }, t.data<float>().ToArray());
    }

    [Fact]
    public void Conversions_WrongRank_ArgumentExceptionNamingTheShape()
    {
        Assert.Contains("(3, 4)", Assert.Throws<ArgumentException>(() => KerasLayout.ConvToTorch(zeros(3, 4))).Message, StringComparison.Ordinal);
        Assert.Contains("(3, 4)", Assert.Throws<ArgumentException>(() => KerasLayout.ConvFromTorch(zeros(3, 4))).Message, StringComparison.Ordinal);
        Assert.Contains("(3, 4)", Assert.Throws<ArgumentException>(() => KerasLayout.ConvTransposeToTorch(zeros(3, 4))).Message, StringComparison.Ordinal);
        Assert.Contains("(2, 3, 4)", Assert.Throws<ArgumentException>(() => KerasLayout.DenseToTorch(zeros(2, 3, 4))).Message, StringComparison.Ordinal);
    }
}
