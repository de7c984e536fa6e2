using System.Globalization;
using System.Text;
using Graft.Checkpoints;

namespace Graft.Cli.Tests;

/// <summary>
/// The memory bound of <see cref="ManyTensorsTests"/> for the formats whose headers are not JSON: an ONNX model of
/// 100,000 initializers (a protobuf message per initializer) and a <c>.pt</c> of 100,000 storages (a zip record and a
/// pickled tensor per storage). Each command runs in a child process whose managed heap is capped at 4 × the header
/// bytes + 64 MB (DOTNET_GCHeapHardLimit), the header being every byte of the file that is not tensor data, and at least
/// 96 bytes per tensor. The ONNX reader once kept a record per protobuf field of every initializer and `plan` needed
/// over 120 MB for a 2.5 MB model (now about 115 MB, inspect about 50 MB).
/// </summary>
public sealed class ManyEntriesTests : IDisposable
{
    private const int Count = 100_000;

    /// <summary>The least a tensor counts for in the memory bound, whatever its format spends on it (README).</summary>
    private const long MinHeaderBytesPerTensor = 96;

    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>
    /// An ONNX model whose graph holds <paramref name="count"/> zero-element float initializers and no node, written
    /// at the protobuf wire level; returns the file's length (all of it is header).
    /// </summary>
    internal static long WriteOnnxInitializers(string path, int count)
    {
        using var graph = new MemoryStream();
        var tensor = new MemoryStream();
        for (var i = 0; i < count; i++)
        {
            tensor.SetLength(0);
            Tag(tensor, 1, 0);
            Varint(tensor, 0); // dims: [0]
            Tag(tensor, 2, 0);
            Varint(tensor, 1); // data_type: FLOAT
            Bytes(tensor, 8, Encoding.UTF8.GetBytes("layer" + i.ToString(CultureInfo.InvariantCulture) + ".weight"));
            Bytes(graph, 5, tensor.ToArray());
        }
        Bytes(graph, 2, "many"u8.ToArray()); // graph name
        using var model = File.Create(path);
        Tag(model, 1, 0);
        Varint(model, 8); // ir_version
        Bytes(model, 7, graph.ToArray());
        return model.Length;
    }

    /// <summary>
    /// A zip <c>.pt</c> (as torch.save writes it) of <paramref name="count"/> one-element float tensors, each in its
    /// own storage; returns the bytes that are not tensor data.
    /// </summary>
    internal static long WritePyTorchStorages(string path, int count)
    {
        var tensors = Enumerable.Range(0, count).Select(i =>
            TensorPayload.FromBytes("layer" + i.ToString(CultureInfo.InvariantCulture) + ".weight", DType.F32, new Shape([1]), BitConverter.GetBytes((float)i)));
        Graft.Checkpoints.PyTorch.PyTorchWriter.Write(path, tensors);
        return new FileInfo(path).Length - 4L * count;
    }

    private static void Tag(Stream s, int field, int wire) => Varint(s, (ulong)((field << 3) | wire));

    private static void Varint(Stream s, ulong v)
    {
        while (v >= 0x80)
        {
            s.WriteByte((byte)(v | 0x80));
            v >>= 7;
        }
        s.WriteByte((byte)v);
    }

    private static void Bytes(Stream s, int field, byte[] value)
    {
        Tag(s, field, 2);
        Varint(s, (ulong)value.Length);
        s.Write(value);
    }

    private static (int Code, string Out, string Err) RunCapped(long heapLimit, params string[] args) =>
        CliHarness.RunProcess(new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = "0x" + heapLimit.ToString("x", CultureInfo.InvariantCulture) }, args);

    [Theory]
    [InlineData("onnx", "inspect")]
    [InlineData("onnx", "convert")]
    [InlineData("onnx", "plan")]
    [InlineData("pt", "inspect")]
    [InlineData("pt", "convert")]
    [InlineData("pt", "plan")]
    public void Command_100kEntries_FitsInFourTimesTheHeaderPlus64MB(string format, string command)
    {
        var path = _h.PathOf("many." + format);
        // An ONNX initializer is described in as few as 25 bytes of protobuf, fewer than the .NET objects any reader
        // needs for a tensor (its name, shape and TensorInfo); the README's bound counts a tensor as at least
        // MinHeaderBytesPerTensor header bytes.
        long header = format == "onnx"
            ? Math.Max(WriteOnnxInitializers(path, Count), MinHeaderBytesPerTensor * Count)
            : WritePyTorchStorages(path, Count);
        string[] args = command switch
        {
            "inspect" => ["inspect", path],
            "convert" => ["convert", path, _h.PathOf("copy.safetensors")],
            _ => ["plan", path, "--into", path],
        };
        // plan opens the file twice (source and target): each header counts.
        long headers = command == "plan" ? 2 * header : header;
        var (code, stdout, stderr) = RunCapped(4 * headers + (64L << 20), args);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        switch (command)
        {
            case "inspect":
                Assert.Contains($"{Count} tensors", stdout);
                Assert.Contains($"layer{Count - 1}.weight", stdout);
                break;
            case "plan":
                Assert.Contains($"{Count} target tensors: {Count} copied", stdout);
                break;
            default:
                using (var copy = CheckpointFile.Open(_h.PathOf("copy.safetensors")))
                {
                    Assert.Equal(Count, copy.Tensors.Count);
                    Assert.Equal($"layer{Count - 1}.weight", copy.Tensors[^1].Name);
                }
                break;
        }
    }
}

/// <summary>
/// Issue 21: <c>inspect</c> says when a <c>.pt</c>'s tensors share a storage, and how many bytes the file stores
/// against what the tensors declare (what a conversion writes).
/// </summary>
public sealed class SharedStorageInspectTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    [Fact]
    public void Inspect_ViewsOfOneStorage_SaysTheStorageIsSharedAndWhatIsStored()
    {
        // PyTorch's fixture: base (a 4×6 float tensor) and six views of its storage.
        var path = Path.Combine(Graft.TestSupport.RepoPaths.Fixtures(), "pytorch", "shared_views.pt");
        var (code, stdout, stderr) = _h.Run("inspect", path);
        Assert.True(code == 0, stderr);
        Assert.Contains("shared storages: 7 tensors view 1 storage(s); the file stores 96 B", stdout);
        var (jsonCode, json, _) = _h.Run("inspect", path, "--json");
        Assert.Equal(0, jsonCode);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var shared = doc.RootElement.GetProperty("sharedStorages");
        Assert.Equal(1, shared.GetProperty("storages").GetInt32());
        Assert.Equal(7, shared.GetProperty("tensors").GetInt32());
        Assert.Equal(96, shared.GetProperty("storedBytes").GetInt64());
        Assert.True(doc.RootElement.GetProperty("bytes").GetInt64() > 96);
    }
}
