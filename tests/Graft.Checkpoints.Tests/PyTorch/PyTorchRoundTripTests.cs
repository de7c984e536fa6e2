using System.Text.Json;
using CsCheck;
using Graft.Checkpoints.PyTorch;
using Graft.TestSupport;

namespace Graft.Checkpoints.Tests.PyTorch;

/// <summary>What Graft writes, Graft and real PyTorch read back unchanged.</summary>
public sealed class PyTorchRoundTripTests : IDisposable
{
    private static readonly DType[] TorchDTypes = [DType.F16, DType.BF16, DType.F32, DType.F64, DType.I8, DType.I16, DType.I32, DType.I64, DType.U8, DType.Bool];

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly Gen<(DType DType, long[] Dims, byte[] Bytes)> TensorGen =
        from dtype in Gen.Int[0, TorchDTypes.Length - 1].Select(i => TorchDTypes[i])
        from rank in Gen.Int[0, 4]
        from dims in Gen.Long[0, 5].Array[rank]
        from bytes in Gen.Byte.Array[(int)(dims.Aggregate(1L, (a, b) => a * b) * dtype.ElementSize())]
        select (dtype, dims, dtype == DType.Bool ? bytes.Select(b => (byte)(b & 1)).ToArray() : bytes);

    [Fact]
    public void Write_ThenOpen_ReturnsSameTensors()
    {
        var n = 0;
        TensorGen.Array[0, 6].Sample(tensors =>
        {
            var path = _dir.File($"rt{Interlocked.Increment(ref n)}.pt");
            var payloads = tensors.Select((t, i) => TensorPayload.FromBytes($"layer{i}.weight", t.DType, new Shape(t.Dims), t.Bytes)).ToList();
            PyTorchWriter.Write(path, payloads);
            using var reader = PyTorchReader.Open(path);
            Assert.Equal("", reader.SelectedKeyPath);
            Assert.Equal(payloads.Select(p => p.Name), reader.Tensors.Select(t => t.Name));
            for (var i = 0; i < tensors.Length; i++)
            {
                var info = reader.Tensors[i];
                Assert.Equal(tensors[i].DType, info.DType);
                Assert.Equal(new Shape(tensors[i].Dims), info.Shape);
                var back = new byte[info.ByteLength];
                reader.ReadBytes(info, back);
                Assert.Equal(tensors[i].Bytes, back);
            }
        }, iter: 200, threads: 1);
    }

    [Fact]
    public void Write_SameInputTwice_SameBytesAndAlignedData()
    {
        var payloads = new[]
        {
            TensorPayload.FromBytes("a", DType.F32, new Shape(3), new byte[12]),
            TensorPayload.FromBytes("b", DType.I64, new Shape(2, 2), Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()),
        };
        var p1 = _dir.File("one.pt");
        var p2 = _dir.File("two.pt");
        CheckpointFile.Write(p1, payloads);
        CheckpointFile.Write(p2, payloads);
        Assert.Equal(File.ReadAllBytes(p1), File.ReadAllBytes(p2));

        using var fs = File.OpenHandle(p1);
        var entries = StoredZip.ReadEntries(fs, RandomAccess.GetLength(fs), p1);
        Assert.Equal(["archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/data/1", "archive/version"], entries.Select(e => e.Name).ToArray());
        Assert.All(entries, e => Assert.Equal(0, e.DataOffset % 64));
        Assert.All(entries, e => Assert.Equal(0, e.Method));
    }

    [Fact]
    public void Write_DuplicateNames_ThrowsAndLeavesNoFile()
    {
        var path = _dir.File("dup.pt");
        var t = TensorPayload.FromBytes("a", DType.F32, new Shape(1), new byte[4]);
        Assert.Throws<ArgumentException>(() => PyTorchWriter.Write(path, [t, t]));
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void Write_FromPyTorchFixture_CopiesViewsAsContiguousTensors()
    {
        using var source = PyTorchReader.Open(Path.Combine(Fixtures.PyTorch, "shared_views.pt"));
        var path = _dir.File("copy.pt");
        PyTorchWriter.Write(path, source.Tensors.Select(t => TensorPayload.FromCheckpoint(source, t)));
        using var copy = PyTorchReader.Open(path);
        foreach (var t in source.Tensors)
        {
            Assert.True(copy.TryGetTensor(t.Name, out var c));
            Assert.Equal(Hashing.Sha256Of(source, t), Hashing.Sha256Of(copy, c));
        }
    }

    [PythonTorchFact]
    public void Write_ThenTorchLoadWeightsOnly_SameTensors()
    {
        var rng = new Random(17);
        var payloads = new List<TensorPayload>();
        var shapes = new long[][] { [3, 4], [], [0], [2, 0, 3], [5], [2, 3, 2, 2] };
        var i = 0;
        foreach (var dtype in TorchDTypes)
        {
            foreach (var dims in shapes)
            {
                var shape = new Shape(dims);
                var bytes = new byte[shape.ElementCount * dtype.ElementSize()];
                rng.NextBytes(bytes);
                if (dtype == DType.Bool)
                {
                    bytes = bytes.Select(b => (byte)(b & 1)).ToArray();
                }
                if (dtype is DType.F16 or DType.BF16 or DType.F32 or DType.F64)
                {
                    // Keep NaN payloads out: torch may canonicalise them when it copies.
                    for (var k = 0; k < bytes.Length; k += dtype.ElementSize())
                    {
                        bytes[k + dtype.ElementSize() - 1] &= 0x3F;
                    }
                }
                payloads.Add(TensorPayload.FromBytes($"t{i++}.{dtype}", dtype, shape, bytes));
            }
        }
        // Many tensors, so the pickle memo passes 256 entries and SETITEMS batches are exercised a little.
        for (var k = 0; k < 300; k++)
        {
            payloads.Add(TensorPayload.FromBytes($"many.{k}", DType.F32, new Shape(1), BitConverter.GetBytes((float)k)));
        }
        var path = _dir.File("graft.pt");
        PyTorchWriter.Write(path, payloads);

        const string Script = """
            import hashlib, json, sys, torch
            sd = torch.load(sys.argv[1], weights_only=True)
            out = []
            for k, v in sd.items():
                b = v.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                out.append([k, str(v.dtype), list(v.shape), hashlib.sha256(b).hexdigest()])
            print(json.dumps(out))
            """;
        var (code, stdout, stderr) = PythonTorch.Run(PythonTorch.Required("torch"), "import sys; sys.argv = ['x', " + JsonSerializer.Serialize(path) + "]; exec(" + JsonSerializer.Serialize(Script) + ")", TimeSpan.FromMinutes(3));
        Assert.True(code == 0, "torch.load failed: " + stderr);
        var rows = JsonDocument.Parse(stdout).RootElement.EnumerateArray().ToList();
        Assert.Equal(payloads.Count, rows.Count);
        var torchNames = new Dictionary<DType, string>
        {
            [DType.F16] = "torch.float16", [DType.BF16] = "torch.bfloat16", [DType.F32] = "torch.float32", [DType.F64] = "torch.float64",
            [DType.I8] = "torch.int8", [DType.I16] = "torch.int16", [DType.I32] = "torch.int32", [DType.I64] = "torch.int64",
            [DType.U8] = "torch.uint8", [DType.Bool] = "torch.bool",
        };
        for (var k = 0; k < payloads.Count; k++)
        {
            var p = payloads[k];
            var row = rows[k];
            Assert.Equal(p.Name, row[0].GetString());
            Assert.Equal(torchNames[p.DType], row[1].GetString());
            Assert.Equal(p.Shape.ToArray(), row[2].EnumerateArray().Select(d => d.GetInt64()).ToArray());
            using var ms = new MemoryStream();
            p.WriteTo(ms);
            Assert.True(Hashing.Sha256(ms.ToArray()) == row[3].GetString(), $"tensor '{p.Name}' differs after torch.load");
        }
    }
}
