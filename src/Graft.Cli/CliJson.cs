using System.Text.Json;

namespace Graft.Cli;

/// <summary>JSON options shared by every <c>--json</c> output.</summary>
internal static class CliJson
{
    /// <summary>
    /// The report's options; when a path was recovered from bytes that are not UTF-8 (<see cref="Graft.Checkpoints.RawPath"/>),
    /// with every string written as <see cref="Graft.Checkpoints.RawPath.Display"/> gives it, so that JSON names files
    /// as the user did and never as <c>/proc/self/fd/N</c>.
    /// </summary>
    public static JsonSerializerOptions Options => Graft.Checkpoints.RawPath.Active ? WithRawNames.Value : Graft.Transfer.TransferReport.JsonOptions;

    private static readonly Lazy<JsonSerializerOptions> WithRawNames = new(() =>
        new JsonSerializerOptions(Graft.Transfer.TransferReport.JsonOptions) { Converters = { new DisplayedString() } });

    private sealed class DisplayedString : System.Text.Json.Serialization.JsonConverter<string>
    {
        public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetString();

        public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) =>
            writer.WriteStringValue(Graft.Checkpoints.RawPath.Display(value));
    }

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
