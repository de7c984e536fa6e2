using System.Text.Json;
using Graft.Checkpoints.PyTorch;

namespace Graft.Checkpoints.Tests.PyTorch;

/// <summary>Every fixture made by real PyTorch reads back bit for bit as the manifest describes it.</summary>
public sealed class PyTorchFixtureTests
{
    private static readonly JsonElement Manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.PyTorch, "manifest.json"))).RootElement;

    public static TheoryData<string> FixtureNames()
    {
        var data = new TheoryData<string>();
        foreach (var p in Manifest.EnumerateObject())
        {
            data.Add(p.Name);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Open_Fixture_EveryTensorBitExact(string fixture)
    {
        var expected = Manifest.GetProperty(fixture);
        var path = Path.Combine(Fixtures.PyTorch, fixture);
        using var reader = PyTorchReader.Open(path);

        Assert.Equal(expected.GetProperty("format").GetString() == "legacy" ? PyTorchContainer.Legacy : PyTorchContainer.Zip, reader.Container);
        Assert.Equal(expected.GetProperty("key_path").GetString(), reader.SelectedKeyPath);
        Assert.Equal(
            expected.GetProperty("candidates").EnumerateArray().Select(c => c.GetString()!).ToArray(),
            reader.TensorDictionaries.Select(d => d.KeyPath).ToArray());
        var prefix = expected.GetProperty("common_prefix");
        Assert.Equal(prefix.ValueKind == JsonValueKind.Null ? null : prefix.GetString(), reader.CommonKeyPrefix);

        var tensors = expected.GetProperty("tensors").EnumerateArray().ToList();
        Assert.Equal(tensors.Select(t => t.GetProperty("name").GetString()).ToArray(), reader.Tensors.Select(t => t.Name).ToArray());
        foreach (var t in tensors)
        {
            var name = t.GetProperty("name").GetString()!;
            Assert.True(reader.TryGetTensor(name, out var info));
            Assert.True(DTypes.TryParseSafetensors(t.GetProperty("dtype").GetString()!, out var dtype));
            Assert.Equal(dtype, info.DType);
            Assert.Equal(new Shape(t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64())), info.Shape);
            var sha = t.GetProperty("sha256").GetString();
            Assert.True(sha == Hashing.Sha256Of(reader, info), $"{fixture}: tensor '{name}' bytes differ (ReadBytes)");
            Assert.True(sha == Hashing.Sha256ViaCopyTo(reader, info), $"{fixture}: tensor '{name}' bytes differ (CopyTo)");
        }
    }

    [Fact]
    public void Open_TrainingCheckpoint_PicksStateDictAndSaysWhy()
    {
        using var reader = PyTorchReader.Open(Path.Combine(Fixtures.PyTorch, "training.pt"));
        Assert.Equal("state_dict", reader.SelectedKeyPath);
        Assert.Contains("largest", reader.SelectionReason, StringComparison.Ordinal);
        Assert.Equal("module.", reader.CommonKeyPrefix);
        Assert.All(reader.Tensors, t => Assert.StartsWith("module.", t.Name, StringComparison.Ordinal)); // reported, not stripped
        Assert.Equal("3", reader.Metadata["epoch"]);
        Assert.Equal("tinycnn", reader.Metadata["arch"]);
        Assert.Equal("0.875", reader.Metadata["best_acc"]);
    }

    [Fact]
    public void Open_WithKeyPath_ReadsThatDictionary()
    {
        var path = Path.Combine(Fixtures.PyTorch, "training.pt");
        using var reader = PyTorchReader.Open(path, "optimizer/state/0");
        Assert.Equal("optimizer/state/0", reader.SelectedKeyPath);
        Assert.Equal(["momentum_buffer"], reader.Tensors.Select(t => t.Name).ToArray());
        Assert.Null(reader.CommonKeyPrefix);
    }

    [Fact]
    public void Open_WithUnknownKeyPath_ThrowsInvalidInputListingCandidates()
    {
        var e = Assert.Throws<InvalidInputException>(() => PyTorchReader.Open(Path.Combine(Fixtures.PyTorch, "two_dicts.pt"), "nope"));
        Assert.Contains("'model'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'ema'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_TwoDictionaries_DefaultIsLargestAndOthersAreListed()
    {
        using var reader = PyTorchReader.Open(Path.Combine(Fixtures.PyTorch, "two_dicts.pt"));
        Assert.Equal("ema", reader.SelectedKeyPath);
        Assert.Contains("'model'", reader.SelectionReason, StringComparison.Ordinal);
        Assert.Equal("_orig_mod.", reader.CommonKeyPrefix);
        var model = reader.TensorDictionaries.Single(d => d.KeyPath == "model");
        Assert.True(model.TensorCount < reader.Tensors.Count);
        Assert.Equal("100", reader.Metadata["step"]);
    }

    [Fact]
    public void DetectFormat_PtFiles_ArePyTorch()
    {
        Assert.IsType<PyTorchFormat>(CheckpointFile.DetectFormat(Path.Combine(Fixtures.PyTorch, "tinycnn.pth")));
        var format = new PyTorchFormat();
        Assert.True(format.Sniff(File.ReadAllBytes(Path.Combine(Fixtures.PyTorch, "dtypes.pt")).AsSpan(0, 64)));
        Assert.True(format.Sniff(File.ReadAllBytes(Path.Combine(Fixtures.PyTorch, "legacy.pt")).AsSpan(0, 64)));
        Assert.False(format.Sniff("{\"a\":1}"u8));
        using var reader = CheckpointFile.Open(Path.Combine(Fixtures.PyTorch, "tinycnn.pth"));
        Assert.Equal("pytorch", reader.Format);
    }
}
