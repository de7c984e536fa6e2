using System.Text.Json;
using CsCheck;
using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Tests.Transforms;

/// <summary>
/// Position embeddings across resolutions: against outputs real PyTorch computed exactly as timm composes its resampling
/// (tests/fixtures/make_vit_fixtures.py), and the promises that need no reference (identity at an unchanged size, the
/// prefix tokens bit for bit, constants stay constant, gradients reach the source).
/// </summary>
public sealed class PositionEmbeddingTests
{
    private static string Fixtures() => Graft.TestSupport.RepoPaths.Fixtures("vit");

    public static TheoryData<string> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures(), "manifest.json")));
        var data = new TheoryData<string>();
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            data.Add(c.GetProperty("name").GetString()!);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Resample_MatchesPyTorchAsTimmComposesIt(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures(), "manifest.json")));
        var c = doc.RootElement.GetProperty("cases").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name);
        static PatchGrid Grid(JsonElement e) => new(e[0].GetInt64(), e[1].GetInt64());
        var from = Grid(c.GetProperty("from"));
        var to = Grid(c.GetProperty("to"));
        WeightTransform t;
        int prefix = 0;
        if (c.GetProperty("kind").GetString() == "absolute")
        {
            prefix = c.GetProperty("prefix").GetInt32();
            var mode = Enum.Parse<PositionInterpolation>(c.GetProperty("interpolation").GetString()!, ignoreCase: true);
            t = PositionEmbedding.Resample(from, to, prefix, mode, c.GetProperty("antialias").GetBoolean());
        }
        else
        {
            t = PositionEmbedding.ResampleRelativeBiasTable(from, to);
        }

        using var reader = CheckpointFile.Open(Path.Combine(Fixtures(), "resample.pt"));
        using var scope = NewDisposeScope();
        var input = TensorBridge.Read(reader, reader.Tensors.Single(x => x.Name == name + ".input"));
        var expected = TensorBridge.Read(reader, reader.Tensors.Single(x => x.Name == name + ".expected"));
        var actual = t.Apply(input);
        Assert.Equal(expected.dtype, actual.dtype);
        bool half = expected.dtype == ScalarType.Float16;
        // libtorch 2.10 against PyTorch 1.13: the same kernels, float32 rounding apart (a few ulps of the largest value,
        // summed over 16 taps; half: one float16 ulp). The README's claim, asserted as it is made: float32 within 4e-6 of
        // the largest value (no relative term on top), float16 within one ulp of each value (2^-10 of it, and the
        // subnormal spacing 2^-24 near zero).
        double scale = expected.abs().max().to(ScalarType.Float64).item<double>();
        TensorAssert.Close(expected, actual, atol: half ? Math.Pow(2, -24) : 4e-6 * scale, rtol: half ? Math.Pow(2, -10) : 0);
        if (prefix > 0)
        {
            Assert.True(input.narrow(1, 0, prefix).equal(actual.narrow(1, 0, prefix)).all().item<bool>(), "the prefix tokens must be kept bit for bit");
        }
    }

    [Fact]
    public void Resample_SameGrid_IsTheIdentityBitForBit()
    {
        using var x = randn(1, 1 + 196, 8);
        var y = PositionEmbedding.Resample(new PatchGrid(14, 14), new PatchGrid(14, 14)).Apply(x);
        Assert.True(x.equal(y).all().item<bool>());
    }

    [Fact]
    public void Resample_WrongInputShape_NamesBothShapes()
    {
        var t = PositionEmbedding.Resample(new PatchGrid(14, 14), new PatchGrid(24, 24), prefixTokens: 1);
        var e = Assert.Throws<ArgumentException>(() => t.OutputShape(new Shape(1, 196, 768)));
        Assert.Contains("(1, 196, 768)", e.Message, StringComparison.Ordinal);
        Assert.Contains("197", e.Message, StringComparison.Ordinal);
        Assert.Equal(new Shape(1, 577, 768), t.OutputShape(new Shape(1, 197, 768)));
    }

    [Fact]
    public void Resample_Property_ShapesPrefixAndConstantsKept()
    {
        Gen.Select(Gen.Int[0, 3], Gen.Int[1, 9], Gen.Int[1, 9], Gen.Int[1, 9], Gen.Int[1, 9], Gen.Int[0, 2])
            .Sample((prefix, h, w, h2, w2, mode) =>
            {
                using var scope = NewDisposeScope();
                var interp = (PositionInterpolation)mode;
                var t = PositionEmbedding.Resample(new PatchGrid(h, w), new PatchGrid(h2, w2), prefix, interp);
                var x = randn(1, prefix + (h * w), 4);
                var y = t.Apply(x);
                Assert.Equal([1L, prefix + (h2 * w2), 4], y.shape);
                Assert.True(x.narrow(1, 0, prefix).equal(y.narrow(1, 0, prefix)).all().item<bool>());
                // Resampling weights sum to one: a grid whose every position holds the same vector keeps it.
                var constant = cat([x.narrow(1, 0, prefix), full([1, h * w, 4], 0.25f)], 1);
                var c = t.Apply(constant).narrow(1, prefix, h2 * w2);
                TensorAssert.Close(full([1, h2 * w2, 4], 0.25f), c, atol: 1e-6, rtol: 0);
            }, iter: 60);
    }

    [Fact]
    public void Resample_IsDifferentiable_ForLinkedPositionEmbeddings()
    {
        var source = randn(1, 1 + 16, 4).requires_grad_(true);
        var y = PositionEmbedding.Resample(new PatchGrid(4, 4), new PatchGrid(6, 6)).Apply(source);
        y.sum().backward();
        Assert.NotNull(source.grad);
        TensorAssert.AllFinite(source.grad!);
        // The class token's gradient is exactly 1 per element (it is copied), the grid's spread over the new positions.
        TensorAssert.Close(ones(1, 1, 4), source.grad!.narrow(1, 0, 1), atol: 0, rtol: 0);
    }

    [Fact]
    public void Composes_WithOtherTransforms()
    {
        var t = PositionEmbedding.Resample(new PatchGrid(4, 4), new PatchGrid(6, 6)).Then(ElementWise.Scale(2));
        Assert.Equal(new Shape(1, 37, 8), t.OutputShape(new Shape(1, 17, 8)));
        Assert.Equal("pos.resample+map.scale", t.Op);
    }

    [Theory]
    [InlineData("24", 24, 24)]
    [InlineData("12x16", 12, 16)]
    [InlineData("12×16", 12, 16)]
    public void PatchGrid_Parse(string text, long h, long w) => Assert.Equal(new PatchGrid(h, w), PatchGrid.Parse(text));

    [Theory]
    [InlineData("")]
    [InlineData("0")]
    [InlineData("12x")]
    [InlineData("-3")]
    [InlineData("3x4x5")]
    public void PatchGrid_ParseInvalid_Throws(string text) => Assert.Throws<FormatException>(() => PatchGrid.Parse(text));

    [Fact]
    public void PatchGrid_SquareAndFromImage()
    {
        Assert.Equal(new PatchGrid(24, 24), PatchGrid.Square(576));
        Assert.Null(PatchGrid.Square(577));
        Assert.Equal(new PatchGrid(12, 16), PatchGrid.FromImage(192, 256, 16));
        Assert.Throws<ArgumentException>(() => PatchGrid.FromImage(200, 256, 16));
        Assert.Equal(new PatchGrid(7, 7), PositionEmbedding.WindowOfTable(169));
        Assert.Null(PositionEmbedding.WindowOfTable(144));
    }
}
