using System.CommandLine;
using System.Text.Json;
using Graft.Checkpoints;

namespace Graft.Cli.Commands;

/// <summary><c>graft inspect FILE</c>: what a checkpoint holds, from its header only (a 10 GB file answers at once).</summary>
internal static class InspectCommand
{
    public static Command Create(CliContext ctx)
    {
        var file = new Argument<FileInfo>("file") { Description = "Checkpoint to inspect." };
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts instead of a table." };
        var format = new Option<string?>("--format") { Description = "Format, when the extension does not tell (safetensors …)." };
        var cmd = new Command("inspect", "List the tensors of a checkpoint: name, dtype, shape, bytes; totals and metadata.") { file, json, format };
        cmd.SetAction(parse =>
        {
            var path = parse.GetValue(file)!.FullName;
            using var reader = CheckpointFile.Open(path, parse.GetValue(format));
            var summary = Summarise(reader);
            if (parse.GetValue(json))
            {
                CliJson.Write(ctx.Out, summary);
            }
            else
            {
                Render(ctx, summary);
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    internal sealed record TensorRow(string Name, string DType, IReadOnlyList<long> Shape, long Elements, long Bytes, bool Buffer);

    /// <summary>What <c>inspect</c> prints. <see cref="TensorList"/> is produced row by row as it is printed, so a
    /// checkpoint of 200,000 tensors costs no second copy of its index. <see cref="Parameters"/> counts what trains;
    /// <see cref="Buffers"/> the values of buffers (BatchNorm running statistics and counters, index tables).</summary>
    internal sealed record Summary(string Path, string Format, int Tensors, long Elements, long Parameters, long FloatParameters, long Buffers, long Bytes,
        IReadOnlyDictionary<string, string> Metadata, IEnumerable<TensorRow> TensorList)
    {
        /// <summary>A <c>.pt</c>'s storages viewed by more than one tensor (null for other formats, or none shared).</summary>
        public StorageSharing? SharedStorages { get; init; }
    }

    /// <summary>
    /// Tensors that view one storage: the file stores <see cref="StoredBytes"/>, the tensors declare
    /// <see cref="Summary.Bytes"/>, and a conversion writes the latter.
    /// </summary>
    internal sealed record StorageSharing(int Storages, int Tensors, long StoredBytes);

    private static Summary Summarise(ICheckpointReader reader)
    {
        long elements = 0, parameters = 0, floats = 0, buffers = 0, bytes = 0;
        foreach (var t in reader.Tensors)
        {
            elements += t.ElementCount;
            if (TensorName.IsBuffer(t.Name))
            {
                buffers += t.ElementCount;
            }
            else
            {
                parameters += t.ElementCount;
                floats += t.DType.IsFloatingPoint() ? t.ElementCount : 0;
            }
            bytes += t.ByteLength;
        }
        return new Summary(reader.Path, reader.Format, reader.Tensors.Count, elements, parameters, floats, buffers, bytes, reader.Metadata,
            reader.Tensors.Select(t => new TensorRow(t.Name, t.DType.SafetensorsName(), t.Shape.ToArray(), t.ElementCount, t.ByteLength, TensorName.IsBuffer(t.Name))))
        {
            SharedStorages = reader is Graft.Checkpoints.PyTorch.PyTorchReader { SharedStorageCount: > 0 } pt
                ? new StorageSharing(pt.SharedStorageCount, pt.TensorsOnSharedStorages, pt.StoredByteLength)
                : null,
        };
    }

    private static readonly TextTableColumn[] Columns =
        [new("tensor"), new("dtype"), new("shape"), new("elements", RightAligned: true), new("bytes", RightAligned: true)];

    private static void Render(CliContext ctx, Summary s)
    {
        TextTable.Write(ctx, Columns, () => s.TensorList.Select(r =>
            new TextCell[] { r.Name + (r.Buffer ? " (buffer)" : ""), r.DType, new Shape(r.Shape).ToString(), r.Elements.ToString("N0"), ByteSize.Format(r.Bytes) }));
        ctx.Out.WriteLine(TerminalText.Escape($"{s.Path} ({s.Format}): {s.Tensors} tensors, {s.Elements:N0} elements: {s.Parameters:N0} parameters ({s.FloatParameters:N0} floating-point) and {s.Buffers:N0} in buffers (running statistics, counters, index tables), {ByteSize.Format(s.Bytes)}"));
        if (s.SharedStorages is { } shared)
        {
            ctx.Out.WriteLine($"  shared storages: {shared.Tensors:N0} tensors view {shared.Storages:N0} storage(s); the file stores {ByteSize.Format(shared.StoredBytes)}, the tensors declare {ByteSize.Format(s.Bytes)}, and a conversion writes each tensor in full ({ByteSize.Format(s.Bytes)})");
        }
        foreach (var (k, v) in s.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            ctx.Out.WriteLine($"  {TerminalText.Escape(k)}: {TerminalText.Escape(v)}");
        }
    }
}
