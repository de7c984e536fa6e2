using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Tests.Transfer;

public sealed class TransferFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("graft-files-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TensorPayload F32(string name, params long[] shape)
    {
        var s = new Shape(shape);
        var bytes = new byte[s.ElementCount * 4];
        for (int i = 0; i < s.ElementCount; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(4 * i), (float)Math.Sin(i + shape.Length));
        }
        return TensorPayload.FromBytes(name, DType.F32, s, bytes);
    }

    /// <summary>Records every report and whether the writer had started (its temporary file existed) at that moment.</summary>
    private sealed class Recorder(string folder) : IProgress<TransferProgress>
    {
        public List<(TransferProgress Value, bool Writing)> Reports { get; } = [];

        public void Report(TransferProgress value)
        {
            lock (Reports)
            {
                Reports.Add((value, Directory.GetFiles(folder, ".*.tmp").Length > 0));
            }
        }
    }

    [Fact]
    public void Files_ProgressComesFromTheWrites_NotFromListingTheTensors()
    {
        // The safetensors writer lists every payload before it writes one: progress taken from that listing reached
        // 100 % before a byte was written. Each report after the first must come while the output is being written.
        var src = Path.Combine(_dir, "src.safetensors");
        var tpl = Path.Combine(_dir, "tpl.safetensors");
        CheckpointFile.Write(src, [F32("a.weight", 8, 3, 3, 3), F32("a.bias", 8), F32("b.weight", 4, 8, 3, 3), F32("b.bias", 4)]);
        CheckpointFile.Write(tpl, [F32("a.weight", 8, 1, 3, 3), F32("a.bias", 8), F32("b.weight", 4, 8, 3, 3), F32("b.bias", 4)]);
        var recorder = new Recorder(_dir);
        Graft.Transfer.WeightTransfer.Files(src, tpl, Path.Combine(_dir, "out.safetensors"), progress: recorder);

        Assert.Equal([0, 1, 2, 3, 4], recorder.Reports.Select(r => r.Value.Done));
        Assert.All(recorder.Reports, r => Assert.Equal(4, r.Value.Total));
        Assert.All(recorder.Reports.Skip(1), r => Assert.True(r.Writing, $"report {r.Value.Done} came before the output was being written"));
        Assert.Equal(["a.bias", "a.weight", "b.bias", "b.weight"], recorder.Reports.Skip(1).Select(r => r.Value.Current).Order(StringComparer.Ordinal));
    }
}
