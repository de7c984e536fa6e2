using Graft.Linked;
using Graft.Transforms;
using TorchSharp;
using static Graft.Tests.Linked.LinkTestKit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Graft.Tests.Linked;

public class LinkedPersistenceTests
{
    private static TwoLayerNet SquaredNet(out TorchSharp.Modules.Conv2d conv1, out LinkedConv conv2)
    {
        conv1 = nn.Conv2d(2, 3, 3, padding: 1);
        conv2 = Link.Conv2d(conv1, weight: ElementWise.Square, inChannels: 3, outChannels: 3,
            weightFunction: w => w.repeat(1, 2, 1, 1)[.., ..3]);
        return new TwoLayerNet(conv1, conv2);
    }

    [Fact]
    public void StateDict_LinkedModel_HoldsTheSourceTensorsOnly()
    {
        // What any checkpoint writer (TorchSharp format, safetensors) stores is the state dict: the source's tensors.
        manual_seed(30);
        using var net = SquaredNet(out var conv1, out var conv2);

        var sd = net.state_dict();

        Assert.Equal(new[] { "conv_1.bias", "conv_1.weight" }, sd.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(conv1.weight.Handle, sd["conv_1.weight"].Handle);
        Assert.Equal(conv1.bias!.Handle, sd["conv_1.bias"].Handle);
        Assert.Empty(conv2.state_dict());
        Assert.Equal(3 * 2 * 9 + 3, ParameterCount(net));
    }

    [Fact]
    public void SaveLoad_Safetensors_StoresSourceOnceAndDerivedFollowsLoadedSource()
    {
        manual_seed(33);
        using var saved = SquaredNet(out _, out _);
        using var x = randn(1, 2, 5, 5);
        using var expected = saved.forward(x).detach();
        var path = Path.Combine(Path.GetTempPath(), $"graft-linked-{Guid.NewGuid():N}.safetensors");
        try
        {
            Graft.Checkpoints.CheckpointFile.Write(path, saved.state_dict().Select(kv => TensorBridge.ToPayload(kv.Key, kv.Value)));
            using (var reader = Graft.Checkpoints.CheckpointFile.Open(path))
            {
                Assert.Equal(new[] { "conv_1.bias", "conv_1.weight" }, reader.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
                manual_seed(34);
                using var loaded = SquaredNet(out _, out _);
                Assert.True((loaded.forward(x).detach() - expected).abs().max().item<float>() > 1e-3);
                StateDictCheckpoint.LoadInto(loaded, reader.Tensors.Select(t => Graft.Checkpoints.TensorPayload.FromCheckpoint(reader, t)));
                AssertClose(expected, loaded.forward(x).detach(), 0);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void SaveLoad_TorchSharpFormat_StoresSourceOnceAndDerivedFollowsLoadedSource()
    {
        manual_seed(31);
        using var saved = SquaredNet(out _, out _);
        using var x = randn(1, 2, 5, 5);
        using var expected = saved.forward(x).detach();
        var path = Path.Combine(Path.GetTempPath(), $"graft-linked-{Guid.NewGuid():N}.dat");
        try
        {
            saved.save(path);
            manual_seed(32);
            using var loaded = SquaredNet(out var conv1, out var conv2);
            using var different = loaded.forward(x).detach();
            Assert.True((different - expected).abs().max().item<float>() > 1e-3);

            loaded.load(path);

            AssertClose(expected, loaded.forward(x).detach(), 0);
            AssertClose(F.conv2d(conv1.forward(x), conv2.DerivedWeight(), conv1.bias, padding: [1, 1]).detach(), loaded.forward(x).detach(), 0);
            // Two tensors in the file: 2 entries, source-sized (a file with the derived weight would be larger).
            using var reader = new BinaryReader(File.OpenRead(path));
            Assert.Equal(2, (int)Decode(reader));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void To_Float64_ReplacesSourceParametersAndTheLinkFollows()
    {
        manual_seed(33);
        using var net = SquaredNet(out var conv1, out var conv2);
        using var x = randn(1, 2, 5, 5);
        using var expected = net.forward(x).detach();
        var before = conv1.weight;

        net.to(ScalarType.Float64);

        Assert.NotSame(before, conv1.weight);
        Assert.Equal(ScalarType.Float64, conv1.weight.dtype);
        using var x64 = x.to(ScalarType.Float64);
        using var y = net.forward(x64);
        Assert.Equal(ScalarType.Float64, y.dtype);
        AssertClose(expected.to(ScalarType.Float64), y.detach(), 1e-5);
        y.sum().backward();
        Assert.NotNull(conv1.weight.grad);
        Assert.Equal(ScalarType.Float64, conv1.weight.grad!.dtype);
    }

    [Fact]
    public void To_DeviceAndDtype_KeepsTheLink()
    {
        // Only a CPU here: .to(device, dtype) still takes TorchSharp's replace-the-Parameter path.
        manual_seed(34);
        using var net = SquaredNet(out var conv1, out var conv2);
        using var x = randn(1, 2, 5, 5);
        using var expected = net.forward(x).detach();

        net.to(CPU, ScalarType.Float64);

        Assert.Equal(DeviceType.CPU, conv2.DerivedWeight().device_type);
        AssertClose(expected.to(ScalarType.Float64), net.forward(x.to(ScalarType.Float64)).detach(), 1e-5);
        Assert.Equal(ScalarType.Float64, conv2.DerivedWeight().dtype);
        Assert.Same(conv1, conv2.Source);
    }

    // TorchSharp's format starts with the entry count as a LEB128 integer.
    private static long Decode(BinaryReader reader)
    {
        long result = 0;
        int shift = 0;
        while (true)
        {
            var b = reader.ReadByte();
            result |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return result;
            }
            shift += 7;
        }
    }
}
