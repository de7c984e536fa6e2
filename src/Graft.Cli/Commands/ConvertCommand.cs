using System.CommandLine;
using Graft.Checkpoints;
using Graft.Checkpoints.PyTorch;

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
        var cmd = new Command("convert", "Convert a checkpoint to another format (tensors bit-exact; metadata carried where the output format holds it).")
        {
            input, output, format, inFormat, key,
        };
        cmd.SetAction(parse =>
        {
            var inPath = parse.GetValue(input)!.FullName;
            var outPath = parse.GetValue(output)!.FullName;
            if (SameFile(inPath, outPath))
            {
                throw new ArgumentException($"{outPath}: the output is the input; convert writes a new file and never modifies its source.");
            }
            if (Directory.Exists(outPath))
            {
                throw new ArgumentException($"{outPath}: is a folder; give an output file name.");
            }
            var outFormatName = parse.GetValue(format);
            var outFormat = outFormatName is not null ? CheckpointFile.GetFormat(outFormatName)
                : CheckpointFile.FormatFromExtension(outPath)
                  ?? throw new ArgumentException($"{outPath}: cannot tell the output format from the extension; pass --format ({string.Join(", ", CheckpointFile.Formats.Where(f => f.CanWrite).Select(f => f.Name))}).");
            if (!outFormat.CanWrite)
            {
                throw new NotSupportedException($"Graft cannot write the {outFormat.Name} format.");
            }
            using var reader = Open(inPath, parse.GetValue(inFormat), parse.GetValue(key));
            CheckpointFile.Write(outPath, reader.Tensors.Select(t => TensorPayload.FromCheckpoint(reader, t)), reader.Metadata, outFormat.Name);
            var bytes = reader.Tensors.Sum(t => t.ByteLength);
            ctx.Out.WriteLine($"{outPath} ({outFormat.Name}): {reader.Tensors.Count} tensors, {Format.Bytes(bytes)}, from {inPath} ({reader.Format})");
            return ExitCodes.Ok;
        });
        return cmd;
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
            throw new ArgumentException($"--key selects a dictionary inside a PyTorch checkpoint; {path} is {f.Name}.");
        }
        return PyTorchReader.Open(path, key);
    }

    /// <summary>True when both paths name one file, also through a symbolic link.</summary>
    private static bool SameFile(string a, string b)
    {
        static string Resolve(string p)
        {
            var info = new FileInfo(p);
            return info.Exists && info.LinkTarget is not null ? (info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? p) : p;
        }
        return string.Equals(Resolve(a), Resolve(b), StringComparison.Ordinal);
    }
}
