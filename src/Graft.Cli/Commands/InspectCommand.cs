using System.CommandLine;
using System.Text.Json;
using Graft.Checkpoints;
using Spectre.Console;

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
                ctx.Out.WriteLine(JsonSerializer.Serialize(summary, CliJson.Options));
            }
            else
            {
                Render(ctx, summary);
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    internal sealed record TensorRow(string Name, string DType, IReadOnlyList<long> Shape, long Elements, long Bytes);

    internal sealed record Summary(string Path, string Format, int Tensors, long Parameters, long FloatParameters, long Bytes,
        IReadOnlyDictionary<string, string> Metadata, IReadOnlyList<TensorRow> TensorList);

    private static Summary Summarise(ICheckpointReader reader)
    {
        var rows = reader.Tensors.Select(t => new TensorRow(t.Name, t.DType.SafetensorsName(), t.Shape.ToArray(), t.ElementCount, t.ByteLength)).ToList();
        return new Summary(reader.Path, reader.Format, rows.Count, rows.Sum(r => r.Elements),
            reader.Tensors.Where(t => t.DType.IsFloatingPoint()).Sum(t => t.ElementCount), rows.Sum(r => r.Bytes),
            reader.Metadata, rows);
    }

    private static void Render(CliContext ctx, Summary s)
    {
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("tensor").AddColumn("dtype").AddColumn("shape").AddColumn(new TableColumn("elements").RightAligned()).AddColumn(new TableColumn("bytes").RightAligned());
        foreach (var r in s.TensorList)
        {
            table.AddRow(Markup.Escape(r.Name), r.DType, new Shape(r.Shape).ToString(), r.Elements.ToString("N0"), Format.Bytes(r.Bytes));
        }
        ctx.Console.Write(table);
        ctx.Console.WriteLine($"{s.Path} ({s.Format}): {s.Tensors} tensors, {s.Parameters:N0} elements ({s.FloatParameters:N0} floating-point), {Format.Bytes(s.Bytes)}");
        foreach (var (k, v) in s.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            ctx.Console.WriteLine($"  {k}: {v}");
        }
    }
}

/// <summary>Small formatting helpers shared by the commands.</summary>
internal static class Format
{
    public static string Bytes(long n) => n switch
    {
        < 1024 => $"{n} B",
        < 1024 * 1024 => $"{n / 1024.0:0.0} KiB",
        < 1024L * 1024 * 1024 => $"{n / (1024.0 * 1024):0.0} MiB",
        _ => $"{n / (1024.0 * 1024 * 1024):0.00} GiB",
    };
}

/// <summary>JSON options shared by every <c>--json</c> output.</summary>
internal static class CliJson
{
    public static JsonSerializerOptions Options => Graft.Transfer.TransferReport.JsonOptions;
}
