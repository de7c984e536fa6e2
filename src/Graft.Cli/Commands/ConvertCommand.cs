using System.CommandLine;
using Graft.Checkpoints;

namespace Graft.Cli.Commands;

/// <summary>
/// <c>graft convert IN OUT</c>: writes every tensor of IN, bit for bit, to OUT in the format OUT's extension (or
/// <c>--format</c>) names: <see cref="CheckpointFile.Convert(ICheckpointReader, string, string?, long?, IProgress{ConvertProgress}?)"/>
/// does the work; this reads the options and renders what was written.
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
            // Chosen once, before the input is opened (the rule transfer and the library share), and handed on as is. A
            // folder has no format; Convert says so.
            ICheckpointFormat? outFormat = Directory.Exists(outPath) ? null : CheckpointFile.OutputFormat(outPath, parse.GetValue(format));
            long? maxShard = parse.GetValue(shardSize) is { } size ? ByteSize.Parse(size, "--shard-size") : null;
            using var reader = Open(inPath, parse.GetValue(inFormat), parse.GetValue(key));
            // OUT is committed only once what the command says about it has been written: standard output on a full disk
            // (`> /dev/full`) fails the command with no new OUT, rather than exit 3 with OUT written.
            using var outputs = new OutputSet();
            var written = ProgressView.Run(ctx, "convert", report => outFormat is null
                ? CheckpointFile.Convert(reader, outPath, parse.GetValue(format), maxShard, report is null ? null : new Reporter(report))
                : CheckpointFile.Convert(reader, outPath, outFormat, maxShard, report is null ? null : new Reporter(report)));
            if (parse.GetValue(json))
            {
                ctx.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(written, CliJson.Options));
            }
            else
            {
                ctx.Out.WriteLine(TerminalText.Escape($"{written.Path} ({written.Format}): {written.Tensors} tensors, {ByteSize.Format(written.Bytes)}, from {written.Source} ({written.SourceFormat})"));
            }
            ctx.Out.Flush();
            outputs.Commit();
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private sealed class Reporter(Action<int, int, string> report) : IProgress<ConvertProgress>
    {
        public void Report(ConvertProgress value) => report(value.Done, value.Total, value.Current);
    }

    /// <summary>The input as the options ask: <c>--key</c> picks a dictionary inside a PyTorch checkpoint.</summary>
    private static ICheckpointReader Open(string path, string? format, string? key)
    {
        if (key is null)
        {
            return CheckpointFile.Open(path, format);
        }
        var f = format is null ? CheckpointFile.DetectFormat(path) : CheckpointFile.GetFormat(format);
        try
        {
            return f.Open(path, key);
        }
        catch (InvalidInputException e)
        {
            throw new InvalidInputException($"--key: {e.Message}", e);
        }
    }
}
