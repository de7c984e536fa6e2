using Graft.Checkpoints;
using Graft.Transfer;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

/// <summary>
/// <see cref="WeightTransfer.IntoModule(string, nn.Module, TransferPolicy?, IReadOnlyList{long}?, string?)"/> writes each
/// tensor straight into the module as it goes: the module must end exactly as the file says (bit for bit where shapes
/// match, the documented adaptation where they don't), tensors kept from the template must not be touched, and a load
/// refused before data moves must leave the module as it was.
/// </summary>
public sealed class IntoModuleTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("graft-into-module-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Sequential Net(long inChannels, long classes, int seed)
    {
        manual_seed(seed);
        var net = nn.Sequential(
            ("conv1", nn.Conv2d(inChannels, 8, 3, padding: 1)), ("bn1", nn.BatchNorm2d(8)), ("relu", nn.ReLU()),
            ("conv2", nn.Conv2d(8, 16, 3, padding: 1, bias: false)), ("bn2", nn.BatchNorm2d(16)),
            ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(16, classes)));
        // Every tensor random, BatchNorm statistics included (a fresh BatchNorm's ones and zeros would let a load that
        // skips them pass), and num_batches_tracked non-zero.
        using (no_grad())
        {
            foreach (var (name, t) in net.state_dict())
            {
                if (t.is_floating_point())
                {
                    t.copy_(name.EndsWith("running_var", StringComparison.Ordinal) ? rand_like(t) + 0.5 : randn_like(t));
                }
                else
                {
                    t.fill_(seed * 10 + 7);
                }
            }
        }
        return net;
    }

    private static Dictionary<string, byte[]> Snapshot(nn.Module module) =>
        module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().bytes.ToArray());

    private string Save(nn.Module module, string file)
    {
        var path = Path.Combine(_dir, file);
        CheckpointFile.Write(path, module.state_dict().Select(kv => TensorBridge.ToPayload(kv.Key, kv.Value)));
        return path;
    }

    [Theory]
    [InlineData("source.safetensors")]
    [InlineData("source.pt")]
    public void IntoModule_SameShapes_EveryTensorEqualsTheFileBitForBit(string file)
    {
        var source = Net(3, 10, seed: 1);
        var expected = Snapshot(source);
        var path = Save(source, file);
        var target = Net(3, 10, seed: 2);
        Assert.NotEqual(expected["bn1.running_var"], Snapshot(target)["bn1.running_var"]);

        var report = WeightTransfer.IntoModule(path, target);

        Assert.Equal(expected.Count, report.Summary.Copied);
        var actual = Snapshot(target);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, bytes) in expected)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(actual[name]), $"{name} differs from {file}");
        }
    }

    [Fact]
    public void IntoModule_GrayStemNewHead_StemIsTheSumHeadUntouched()
    {
        var source = Net(3, 10, seed: 3);
        var path = Save(source, "source.safetensors");
        var target = Net(1, 4, seed: 4);
        var before = Snapshot(target);

        WeightTransfer.IntoModule(path, target);

        // The stem: the sum over the three RGB inputs, computed here in float64 from the source's values.
        var w = source.state_dict()["conv1.weight"].detach().to(ScalarType.Float64).data<double>().ToArray(); // (8, 3, 3, 3)
        var got = target.state_dict()["conv1.weight"].detach().to(ScalarType.Float64).data<double>().ToArray(); // (8, 1, 3, 3)
        Assert.Equal(8 * 9, got.Length);
        for (int o = 0; o < 8; o++)
        {
            for (int k = 0; k < 9; k++)
            {
                double sum = w[(o * 3 + 0) * 9 + k] + w[(o * 3 + 1) * 9 + k] + w[(o * 3 + 2) * 9 + k];
                Assert.True(Math.Abs(got[o * 9 + k] - sum) <= 1e-6 * Math.Max(1, Math.Abs(sum)), $"conv1.weight[{o},0,{k}]: {got[o * 9 + k]} vs {sum}");
            }
        }
        // The head (another class count) keeps the module's own values: not rewritten, not even with themselves.
        var after = Snapshot(target);
        Assert.Equal(before["fc.weight"], after["fc.weight"]);
        Assert.Equal(before["fc.bias"], after["fc.bias"]);
        // Everything else is the source's.
        var sourceBytes = Snapshot(source);
        foreach (var name in after.Keys.Where(n => !n.StartsWith("fc.", StringComparison.Ordinal) && n != "conv1.weight"))
        {
            Assert.True(sourceBytes[name].AsSpan().SequenceEqual(after[name]), $"{name} is not the source's");
        }
    }

    [Theory]
    [InlineData("source.safetensors")]
    [InlineData("source.pt")]
    public void IntoModule_TruncatedFile_LeavesTheModuleUntouched(string file)
    {
        var path = Save(Net(3, 10, seed: 5), file);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length * 3 / 4)]);
        var target = Net(3, 10, seed: 6);
        var before = Snapshot(target);

        Assert.Throws<CheckpointFormatException>(() => WeightTransfer.IntoModule(path, target));

        AssertUnchanged(before, target);
    }

    [Fact]
    public void IntoModule_StrictRefusal_LeavesTheModuleUntouched()
    {
        // conv1 and bn1 come first in template order and match exactly; the refusal is about the head, planned last.
        var path = Save(Net(3, 10, seed: 7), "source.safetensors");
        var target = Net(3, 4, seed: 8);
        var before = Snapshot(target);

        Assert.Throws<TransferStrictException>(() => WeightTransfer.IntoModule(path, target, TransferPolicy.Default with { Strict = true }));

        AssertUnchanged(before, target);
    }

    private static void AssertUnchanged(Dictionary<string, byte[]> before, nn.Module module)
    {
        var after = Snapshot(module);
        foreach (var (name, bytes) in before)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"{name} was written by a load that failed");
        }
    }
}
