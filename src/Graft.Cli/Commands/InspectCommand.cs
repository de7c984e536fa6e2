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
        IReadOnlyDictionary<string, string> Metadata, IEnumerable<TensorRow> TensorList);

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
            reader.Tensors.Select(t => new TensorRow(t.Name, t.DType.SafetensorsName(), t.Shape.ToArray(), t.ElementCount, t.ByteLength, TensorName.IsBuffer(t.Name))));
    }

    private static readonly TextTableColumn[] Columns =
        [new("tensor"), new("dtype"), new("shape"), new("elements", RightAligned: true), new("bytes", RightAligned: true)];

    private static void Render(CliContext ctx, Summary s)
    {
        TextTable.Write(ctx, Columns, () => s.TensorList.Select(r =>
            new TextCell[] { r.Name + (r.Buffer ? " (buffer)" : ""), r.DType, new Shape(r.Shape).ToString(), r.Elements.ToString("N0"), Format.Bytes(r.Bytes) }));
        ctx.Out.WriteLine(TerminalText.Escape($"{s.Path} ({s.Format}): {s.Tensors} tensors, {s.Elements:N0} elements: {s.Parameters:N0} parameters ({s.FloatParameters:N0} floating-point) and {s.Buffers:N0} in buffers (running statistics, counters, index tables), {Format.Bytes(s.Bytes)}"));
        foreach (var (k, v) in s.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            ctx.Out.WriteLine($"  {TerminalText.Escape(k)}: {TerminalText.Escape(v)}");
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

    /// <summary>
    /// Serialises <paramref name="value"/> onto <paramref name="output"/> in chunks, followed by a line break, without
    /// building the whole text first (a listing of 200,000 tensors is tens of megabytes of JSON).
    /// </summary>
    public static void Write<T>(TextWriter output, T value) => Write(output, stream => JsonSerializer.Serialize(stream, value, Options));

    /// <summary>Lets <paramref name="write"/> put UTF-8 JSON onto <paramref name="output"/> in chunks, then ends the line.</summary>
    public static void Write(TextWriter output, Action<Stream> write)
    {
        using (var stream = new TextWriterStream(output))
        {
            write(stream);
        }
        output.WriteLine();
    }

    /// <summary>A write-only stream that decodes UTF-8 onto a text writer.</summary>
    private sealed class TextWriterStream(TextWriter output) : Stream
    {
        private readonly System.Text.Decoder _decoder = new System.Text.UTF8Encoding(false).GetDecoder();
        private char[] _chars = new char[4096];

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => output.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            var need = _decoder.GetCharCount(buffer, flush: false);
            if (need > _chars.Length)
            {
                _chars = new char[need];
            }
            var n = _decoder.GetChars(buffer, _chars, flush: false);
            output.Write(_chars, 0, n);
        }
    }
}
