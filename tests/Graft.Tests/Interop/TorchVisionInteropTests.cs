using System.Text.Json;
using Graft.Checkpoints;
using Graft.Transfer;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Graft.Tests.Interop;

/// <summary>
/// TorchSharp's TorchVision models against real torchvision 0.14, model by model: state-dict names and shapes from
/// tests/fixtures/torchvision (made by make_torchvision_fixtures.py), and what a transfer of a torchvision file into the
/// TorchSharp model does (planned from shapes alone: no weights needed, and it is the plan WeightTransfer.IntoModule runs).
/// </summary>
public class TorchVisionInteropTests(ITestOutputHelper output)
{
    private static string FixtureFolder() => Graft.TestSupport.RepoPaths.Fixtures("torchvision");

    private static List<TensorInfo> Fixture(string model)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureFolder(), model + ".json")));
        return doc.RootElement.GetProperty("tensors").EnumerateArray().Select(t =>
        {
            var shape = new Shape(t[1].EnumerateArray().Select(x => x.GetInt64()).ToArray());
            var dtype = t[2].GetString() switch { "int64" => DType.I64, _ => DType.F32 };
            return new TensorInfo(t[0].GetString()!, dtype, shape, checked(shape.ElementCount * dtype.ElementSize()));
        }).ToList();
    }

    private static nn.Module Build(string model) => model switch
    {
        "alexnet" => torchvision.models.alexnet(),
        "googlenet" => torchvision.models.googlenet(),
        "inception_v3" => torchvision.models.inception_v3(),
        "mobilenet_v2" => torchvision.models.mobilenet_v2(),
        "mobilenet_v3_large" => torchvision.models.mobilenet_v3_large(),
        "mobilenet_v3_small" => torchvision.models.mobilenet_v3_small(),
        "resnet18" => torchvision.models.resnet18(),
        "resnet34" => torchvision.models.resnet34(),
        "resnet50" => torchvision.models.resnet50(),
        "resnet101" => torchvision.models.resnet101(),
        "resnet152" => torchvision.models.resnet152(),
        "resnext50_32x4d" => torchvision.models.resnext50_32x4d(),
        "resnext101_32x8d" => torchvision.models.resnext101_32x8d(),
        "resnext101_64x4d" => torchvision.models.resnext101_64x4d(),
        "wide_resnet50_2" => torchvision.models.wide_resnet50_2(),
        "wide_resnet101_2" => torchvision.models.wide_resnet101_2(),
        "vgg11" => torchvision.models.vgg11(),
        "vgg11_bn" => torchvision.models.vgg11_bn(),
        "vgg13" => torchvision.models.vgg13(),
        "vgg13_bn" => torchvision.models.vgg13_bn(),
        "vgg16" => torchvision.models.vgg16(),
        "vgg16_bn" => torchvision.models.vgg16_bn(),
        "vgg19" => torchvision.models.vgg19(),
        "vgg19_bn" => torchvision.models.vgg19_bn(),
        _ => throw new ArgumentException(model),
    };

    /// <summary>
    /// What differs from torchvision, per model (measured; the README's table says the same). Every other model has
    /// exactly torchvision's names and shapes.
    /// </summary>
    private static readonly Dictionary<string, (int OnlyTorchvision, string Prefixes)> s_differences = new(StringComparer.Ordinal)
    {
        // TorchSharp's GoogLeNet has no auxiliary classifiers; torchvision's file holds them (aux1.*, aux2.*).
        ["googlenet"] = (20, "aux1.|aux2."),
        // TorchSharp builds ResNeXt-101 with ResNet-50's block counts (3, 4, 6, 3), so layer3 has 6 blocks, not 23.
        ["resnext101_32x8d"] = (306, "layer3."),
        ["resnext101_64x4d"] = (306, "layer3."),
    };

    /// <summary>Every model with a fixture (one per torchvision model TorchSharp's TorchVision also builds).</summary>
    public static TheoryData<string> Models => new(ModelNames());

    private static string[] ModelNames() =>
        Directory.GetFiles(FixtureFolder(), "*.json").Select(f => Path.GetFileNameWithoutExtension(f)).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void Fixtures_CoverEveryModelTorchSharpsTorchVisionBuilds()
    {
        var factories = typeof(torchvision.models).GetMethods(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
            .Select(m => m.Name).Distinct().Order(StringComparer.Ordinal);
        Assert.Equal(factories, ModelNames());
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void StateDict_AgainstTorchvision_NamesShapesAndTransferVerdict(string model)
    {
        var expected = Fixture(model);
        using var scope = NewDisposeScope();
        using var net = Build(model);
        var actual = net.state_dict().ToDictionary(kv => kv.Key, kv => new Shape(kv.Value.shape), StringComparer.Ordinal);
        var names = expected.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var onlyTorchvision = expected.Where(t => !actual.ContainsKey(t.Name)).Select(t => t.Name).ToList();
        var onlyTorchSharp = actual.Keys.Where(n => !names.Contains(n)).ToList();
        var shapes = expected.Where(t => actual.TryGetValue(t.Name, out var a) && a != t.Shape).Select(t => $"{t.Name} {t.Shape} vs {actual[t.Name]}").ToList();
        output.WriteLine($"{model}: torchvision {expected.Count} tensors, TorchSharp {actual.Count}; only in torchvision {onlyTorchvision.Count}, only in TorchSharp {onlyTorchSharp.Count}, other shapes {shapes.Count}");

        Assert.Empty(onlyTorchSharp);
        Assert.Empty(shapes);
        // Not compared: the order (TorchSharp lists a BatchNorm's buffers in another order; Graft matches by name).

        // A torchvision file into the TorchSharp model, planned from shapes alone (WeightTransfer.IntoModule runs this plan).
        using var source = new ShapesOnlyCheckpoint(model + ".json", expected);
        using var template = StateDictCheckpoint.FromModule(net);
        var s = Graft.Transfer.WeightTransfer.Plan(source, template).Summary;
        output.WriteLine($"  transfer: {s.Copied} copied, {s.UnusedSources} source tensors unused; {s.VerdictText}");
        Assert.Equal(actual.Count, s.Copied);
        if (s_differences.TryGetValue(model, out var d))
        {
            Assert.Equal(d.OnlyTorchvision, onlyTorchvision.Count);
            Assert.All(onlyTorchvision, n => Assert.Contains(d.Prefixes.Split('|'), p => n.StartsWith(p, StringComparison.Ordinal)));
            Assert.Equal(d.OnlyTorchvision, s.UnusedSources);
            Assert.False(s.Complete);   // --strict refuses a file with tensors the model has no place for
            // Every target is carried over, but the file's extra tensors are left behind: the verdict says how much
            // (GoogLeNet's auxiliary heads are about half its values), never "complete".
            Assert.Equal(TransferVerdict.Partial, s.Verdict);
            long unused = expected.Where(t => onlyTorchvision.Contains(t.Name)).Sum(t => t.Shape.ElementCount);
            Assert.Equal(unused, s.SourceValuesLeftBehind);
            Assert.StartsWith($"partial: {ReportSummary.Percent(unused, s.SourceValues)} of the source's values", s.VerdictText, StringComparison.Ordinal);
        }
        else
        {
            Assert.Empty(onlyTorchvision);
            Assert.True(s.Complete);
            Assert.Equal(TransferVerdict.Complete, s.Verdict);
        }
    }

    /// <summary>A checkpoint known by its names, shapes and dtypes only: enough to plan a transfer.</summary>
    private sealed class ShapesOnlyCheckpoint(string path, IReadOnlyList<TensorInfo> tensors) : ICheckpointReader
    {
        public string Path => path;
        public string Format => "shapes";
        public IReadOnlyList<TensorInfo> Tensors => tensors;
        public IReadOnlyDictionary<string, string> Metadata { get; } = new Dictionary<string, string>();
        public bool TryGetTensor(string name, out TensorInfo info)
        {
            info = tensors.FirstOrDefault(t => t.Name == name)!;
            return info is not null;
        }
        public void ReadBytes(TensorInfo tensor, Span<byte> destination) => throw new NotSupportedException("shapes only");
        public void CopyTo(TensorInfo tensor, Stream destination) => throw new NotSupportedException("shapes only");
        public void Dispose()
        {
        }
    }
}
