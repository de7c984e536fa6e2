using Graft.Checkpoints;
using Graft.Transformers;
using static TorchSharp.torch;

namespace Graft.Tests.Transformers;

/// <summary>The noise itself: for any number of copies it sums to zero over the copies of each input, per row, and changes every copy.</summary>
public sealed class CancellingNoiseTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Apply_SumOverCopiesUnchanged_EveryCopyChanged(int copies)
    {
        const int Rows = 5, Period = 6;
        var noise = new CancellingNoise(1, Period, copies, 1e-2, seed: 9);
        using var input = randn(Rows, Period, dtype: ScalarType.Float64, generator: new Generator(4)).repeat(1, copies);
        var x = input.contiguous().data<double>().ToArray();
        var y = noise.Apply(input).contiguous().data<double>().ToArray();
        int width = Period * copies;
        for (int r = 0; r < Rows; r++)
        {
            for (int c = 0; c < Period; c++)
            {
                double before = 0, after = 0;
                for (int m = 0; m < copies; m++)
                {
                    int i = r * width + c + m * Period;
                    before += x[i];
                    after += y[i];
                    Assert.True(double.IsFinite(y[i]) && y[i] != x[i], $"[{r}, {c + m * Period}] unchanged");
                }
                Assert.True(Math.Abs(after - before) <= 1e-14, $"row {r}, input {c}: copies sum to {after}, not {before}");
            }
        }
        Assert.Throws<ArgumentException>(() => noise.OutputShape(new Shape(Rows, width + 1)));
    }
}
