using Graft.Checkpoints;
using Graft.Checkpoints.TorchSharpFormat;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Tests.Formats;

/// <summary>
/// Proves Graft's pure-managed <c>Module.save</c> reader and writer agree with real TorchSharp, both ways. This lives
/// here, not in Graft.Checkpoints.Tests, because that project must not load libtorch.
/// </summary>
public sealed class TorchSharpFormatInteropTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("graft-tsfmt-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static nn.Module<Tensor, Tensor> Model() => nn.Sequential(
        ("conv", nn.Conv2d(3, 4, 3)),
        ("bn", nn.BatchNorm2d(4)),
        ("relu", nn.ReLU()),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(4 * 6 * 6, 5)));

    private static byte[] Bytes(Tensor t)
    {
        using var c = t.detach().cpu().contiguous();
        return c.bytes.ToArray();
    }

    private static DType ToDType(ScalarType t) => t switch
    {
        ScalarType.Float32 => DType.F32,
        ScalarType.Int64 => DType.I64,
        _ => throw new NotSupportedException(t.ToString()),
    };

    [Fact]
    public void Read_ModuleSave_MatchesStateDictBitForBit()
    {
        using var model = Model();
        // Make the BatchNorm buffers non-trivial, so running_mean/var and num_batches_tracked are really compared.
        model.train();
        using (var x = randn(2, 3, 8, 8))
        {
            model.call(x).Dispose();
        }
        var path = Path.Combine(_dir, "model.dat");
        model.save(path);

        var sd = model.state_dict();
        using var reader = TorchSharpReader.Open(path);
        // Module.save writes the whole state dict, buffers included (BatchNorm's num_batches_tracked, an int64 scalar).
        Assert.Equal(sd.Keys, reader.Tensors.Select(t => t.Name));
        Assert.Contains("bn.num_batches_tracked", sd.Keys);
        foreach (var info in reader.Tensors)
        {
            var t = sd[info.Name];
            Assert.Equal(ToDType(t.dtype), info.DType);
            Assert.Equal(t.shape, info.Shape.ToArray());
            var actual = new byte[info.ByteLength];
            reader.ReadBytes(info, actual);
            Assert.Equal(Bytes(t), actual);
        }
    }

    [Fact]
    public void Write_ThenModuleLoad_LoadsEveryTensor()
    {
        using var source = Model();
        using var target = Model();
        var sd = source.state_dict();
        using (no_grad())
        {
            sd["bn.num_batches_tracked"].fill_(42);
            sd["bn.running_var"].fill_(3.5f);
        }
        var payloads = sd.Select(kv => TensorPayload.FromBytes(kv.Key, ToDType(kv.Value.dtype), new Shape(kv.Value.shape), Bytes(kv.Value))).ToList();
        var path = Path.Combine(_dir, "graft.dat");
        TorchSharpWriter.Write(path, payloads);

        target.load(path);
        var loaded = target.state_dict();
        Assert.Equal(sd.Keys, loaded.Keys);
        foreach (var (name, t) in sd)
        {
            Assert.Equal(Bytes(t), Bytes(loaded[name]));
        }
    }
}
