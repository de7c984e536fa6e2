using System.CommandLine;
using Graft.Checkpoints;
using Graft.Checkpoints.PyTorch;
using Graft.Checkpoints.Sharded;

namespace Graft.Cli.Commands;

/// <summary>
/// <c>graft convert IN OUT</c>: writes every tensor of IN, bit for bit, to OUT in the format OUT's extension (or
/// <c>--format</c>) names. Tensors stream from reader to writer one at a time; the output appears atomically or not at all.
/// </summary>
internal static class ConvertCommand
{
    public static Command Create(CliContext ctx)
    {
        var input = new Argument<FileInfo>("in") { Description = "Checkpoint to read (format detected from its content, else its extension)." };
        var output = new Argument<FileInfo>("out") { Description = "Checkpoint to write (format from the extension or --format); replaced atomically." };
        var format = new Option<string?>("--format") { Description = "Output format when the extension does not tell (safetensors, pytorch …)." };
        var inFormat = new Option<string?>("--in-format") { Description = "Input format, overriding detection." };
        var key = new Option<string?>("--key") { Description = "PyTorch input: the dictionary of tensors to convert, as a key path (state_dict, model/ema …); default: the obvious one." };
        var json = new Option<bool>("--json") { Description = "Print what was written as JSON for scripts." };
        var shardSize = new Option<string?>("--shard-size") { Description = "Sharded output (.safetensors.index.json): most tensor bytes per shard, like 500MB or 2GiB (default 5GB, as transformers)." };
        var cmd = new Command("convert", "Convert a checkpoint to another format (tensors bit-exact; metadata carried where the output format holds it).")
        {
            input, output, format, inFormat, key, shardSize, json,
        };
        cmd.SetAction(parse =>
        {
            var inPath = parse.GetValue(input)!.FullName;
            var outPath = parse.GetValue(output)!.FullName;
            if (Directory.Exists(outPath))
            {
                throw new InvalidInputException($"{outPath}: is a folder; give an output file name.");
            }
            var outFormatName = parse.GetValue(format);
            var outFormat = outFormatName is not null ? CheckpointFile.GetFormat(outFormatName)
                : CheckpointFile.FormatFromExtension(outPath)
                  ?? throw new InvalidInputException($"{outPath}: cannot tell the output format from the extension; pass --format ({string.Join(", ", CheckpointFile.Formats.Where(f => f.CanWrite).Select(f => f.Name))}).");
            if (!outFormat.CanWrite)
            {
                throw new InvalidInputException($"Graft cannot write the {outFormat.Name} format.");
            }
            using var reader = Open(inPath, parse.GetValue(inFormat), parse.GetValue(key));
            CheckpointFile.EnsureOutputSparesInputs(outPath, outFormat, (reader, "input"));
            long? maxShard = parse.GetValue(shardSize) is { } size ? ByteSize.Parse(size, "--shard-size") : null;
            ProgressView.Run(ctx, "convert", report =>
            {
                int done = 0;
                var payloads = reader.Tensors.Select(t => TensorPayload.FromCheckpoint(reader, t))
                    .Select(p => report is null ? p : TensorPayload.Observed(p, w => report(++done, reader.Tensors.Count, w.Name)));
                CheckpointFile.Write(outPath, payloads, reader.Metadata, outFormat.Name, maxShard);
            });
            var bytes = reader.Tensors.Sum(t => t.ByteLength);
            if (parse.GetValue(json))
            {
                var files = outFormat is ShardedSafetensorsFormat ? ShardedSafetensorsReaderFiles(outPath) : [outPath];
                ctx.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(
                    new Written(outPath, outFormat.Name, reader.Tensors.Count, bytes, files, inPath, reader.Format), CliJson.Options));
            }
            else
            {
                ctx.Out.WriteLine(TerminalText.Escape($"{outPath} ({outFormat.Name}): {reader.Tensors.Count} tensors, {Format.Bytes(bytes)}, from {inPath} ({reader.Format})"));
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>What <c>convert --json</c> prints: the output, its files (the index first, then the shards), and the input.</summary>
    internal sealed record Written(string Path, string Format, int Tensors, long Bytes, IReadOnlyList<string> Files, string Source, string SourceFormat);

    private static IReadOnlyList<string> ShardedSafetensorsReaderFiles(string index)
    {
        using var r = ShardedSafetensorsReader.Open(index);
        return [index, .. r.ShardPaths];
    }

    private static ICheckpointReader Open(string path, string? format, string? key)
    {
        if (key is null)
        {
            return CheckpointFile.Open(path, format);
        }
        var f = format is null ? CheckpointFile.DetectFormat(path) : CheckpointFile.GetFormat(format);
        if (f is not PyTorchFormat)
        {
            throw new InvalidInputException($"--key selects a dictionary inside a PyTorch checkpoint; {path} is {f.Name}.");
        }
        return PyTorchReader.Open(path, key);
    }
}

/// <summary>Sizes on the command line: a number of bytes with an optional unit (KB, MB, GB decimal; KiB, MiB, GiB binary).</summary>
internal static class ByteSize
{
    public static long Parse(string text, string option)
    {
        var t = text.Trim();
        int split = 0;
        while (split < t.Length && (char.IsAsciiDigit(t[split]) || t[split] == '.'))
        {
            split++;
        }
        long unit = t[split..].Trim().ToUpperInvariant() switch
        {
            "" or "B" => 1,
            "KB" => 1000,
            "MB" => 1000_000,
            "GB" => 1000_000_000,
            "KIB" => 1L << 10,
            "MIB" => 1L << 20,
            "GIB" => 1L << 30,
            _ => 0,
        };
        if (unit == 0 || !double.TryParse(t[..split], System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var n)
            || n <= 0 || n * unit >= long.MaxValue || n * unit < 1)
        {
            throw new InvalidInputException($"{option}: '{text}' is not a positive size (for example 500MB, 2GiB or 1048576).");
        }
        return (long)(n * unit);
    }
}
