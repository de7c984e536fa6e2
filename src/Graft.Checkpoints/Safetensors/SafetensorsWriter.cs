using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Graft.Checkpoints.Safetensors;

/// <summary>
/// Writes safetensors files. Output is deterministic: the same tensors and metadata always give the same bytes
/// (metadata keys sorted ordinally, header entries in the order given, data in the order given except that computed
/// payloads (<see cref="TensorPayload.IsComputed"/>) follow the streamed ones, header padded with spaces to a multiple
/// of 8 so the data buffer is aligned), which keeps converted checkpoints diffable and cacheable by content hash. The
/// format locates every tensor by its offsets, so the data order is free; readers (Graft's, the reference one) sort by offset.
/// </summary>
public static class SafetensorsWriter
{
    private const string MetadataKey = "__metadata__";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Writes a safetensors file atomically: the destination is replaced only once every tensor has been written in
    /// full, so a payload that fails midway leaves the previous file (or no file) behind.
    /// </summary>
    /// <exception cref="ArgumentException">Two tensors share a name, or a string is not valid Unicode.</exception>
    /// <exception cref="InvalidInputException">A tensor is named <c>__metadata__</c>, or the header would pass readers' limit: these tensors need another format or a sharded output.</exception>
    /// <exception cref="InvalidOperationException">A payload wrote a different number of bytes than it declared.</exception>
    public static void Write(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        // Build the header before the temporary file exists, so caller mistakes never touch the disk.
        var header = BuildHeader(list, metadata);
        AtomicFile.Write(path, stream => WriteBody(stream, header, list));
    }

    /// <summary>
    /// Writes a safetensors image to a stream (which is not closed). Use <see cref="Write"/> for files: a failure here
    /// leaves a partial image in the stream.
    /// </summary>
    /// <exception cref="ArgumentException">Two tensors share a name, or a string is not valid Unicode.</exception>
    /// <exception cref="InvalidInputException">A tensor is named <c>__metadata__</c>, or the header would pass readers' limit: these tensors need another format or a sharded output.</exception>
    /// <exception cref="InvalidOperationException">A payload wrote a different number of bytes than it declared.</exception>
    public static void WriteTo(Stream destination, IReadOnlyList<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(tensors);
        var header = BuildHeader(tensors, metadata);
        WriteBody(destination, header, tensors);
    }

    private static void WriteBody(Stream destination, ReadOnlyMemory<byte> header, IReadOnlyList<TensorPayload> tensors)
    {
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
        destination.Write(prefix);
        destination.Write(header.Span);
        foreach (var i in DataOrder(tensors))
        {
            PayloadStream.WriteExactly(tensors[i], destination);
        }
    }

    /// <summary>Indices of <paramref name="tensors"/> in the order their data is laid out: streamed, then computed (stable).</summary>
    private static int[] DataOrder(IReadOnlyList<TensorPayload> tensors)
    {
        var order = new int[tensors.Count];
        int k = 0;
        for (var pass = 0; pass < 2; pass++)
        {
            for (var i = 0; i < tensors.Count; i++)
            {
                if (tensors[i].IsComputed == (pass == 1))
                {
                    order[k++] = i;
                }
            }
        }
        return order;
    }

    /// <summary>The padded header bytes (without the 8-byte length prefix).</summary>
    /// <remarks>
    /// Built in one buffer sized from the names up front and returned without a copy: a header of 100,000 tensors is
    /// several megabytes, and growing it by doubling then copying it out held three times that.
    /// </remarks>
    internal static ReadOnlyMemory<byte> BuildHeader(IReadOnlyList<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (t is null)
            {
                throw new ArgumentException("The tensor list contains null.", nameof(tensors));
            }
            if (t.Name == MetadataKey)
            {
                throw new InvalidInputException($"'{MetadataKey}' is reserved by the safetensors format and cannot name a tensor.");
            }
            if (!names.Add(t.Name))
            {
                throw new ArgumentException($"Tensor '{t.Name}' appears more than once; safetensors names must be unique.", nameof(tensors));
            }
        }

        long estimate = 64;
        foreach (var t in tensors)
        {
            // "NAME":{"dtype":"F32","shape":[…],"data_offsets":[…,…]}, with room for a few escapes and long numbers.
            estimate += t.Name.Length + 80 + 12L * t.Shape.Rank;
        }
        var json = new ArrayBufferWriter<byte>((int)Math.Min(estimate, SafetensorsReader.MaxHeaderLength));
        Ascii(json, "{");
        var first = true;
        if (metadata is { Count: > 0 })
        {
            Str(json, MetadataKey, null);
            Ascii(json, ":{");
            var keys = metadata.Keys.ToArray();
            Array.Sort(keys, StringComparer.Ordinal);
            for (var i = 0; i < keys.Length; i++)
            {
                var value = metadata[keys[i]]
                    ?? throw new ArgumentException($"Metadata value for '{keys[i]}' is null; safetensors metadata holds strings only.", nameof(metadata));
                if (i > 0)
                {
                    Ascii(json, ",");
                }
                Str(json, keys[i], null);
                Ascii(json, ":");
                Str(json, value, null);
            }
            Ascii(json, "}");
            first = false;
        }

        var begins = new long[tensors.Count];
        long offset = 0;
        foreach (var i in DataOrder(tensors))
        {
            begins[i] = offset;
            offset = checked(offset + tensors[i].ByteLength);
        }
        for (var i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            if (!first)
            {
                Ascii(json, ",");
            }
            first = false;
            offset = begins[i];
            var end = offset + t.ByteLength;
            Str(json, t.Name, t.Name);
            Ascii(json, ":{\"dtype\":\"");
            Ascii(json, t.DType.SafetensorsName());
            Ascii(json, "\",\"shape\":[");
            for (var d = 0; d < t.Shape.Rank; d++)
            {
                if (d > 0)
                {
                    Ascii(json, ",");
                }
                Ascii(json, t.Shape[d].ToString(CultureInfo.InvariantCulture));
            }
            Ascii(json, "],\"data_offsets\":[");
            Ascii(json, offset.ToString(CultureInfo.InvariantCulture));
            Ascii(json, ",");
            Ascii(json, end.ToString(CultureInfo.InvariantCulture));
            Ascii(json, "]}");
        }
        Ascii(json, "}");

        var padded = (json.WrittenCount + 7) / 8 * 8;
        if (padded > SafetensorsReader.MaxHeaderLength)
        {
            throw new InvalidInputException(
                $"The header would be {padded} bytes, over the {SafetensorsReader.MaxHeaderLength}-byte limit readers enforce; split the checkpoint (a sharded output).");
        }
        var pad = (int)(padded - json.WrittenCount);
        json.GetSpan(pad)[..pad].Fill((byte)' ');
        json.Advance(pad);
        return json.WrittenMemory;
    }

    private static void Ascii(ArrayBufferWriter<byte> w, string s)
    {
        var span = w.GetSpan(s.Length);
        var n = Encoding.ASCII.GetBytes(s, span);
        w.Advance(n);
    }

    /// <summary>Writes a JSON string the way serde_json does: raw UTF-8, escaping only quotes, backslashes and controls.</summary>
    private static void Str(ArrayBufferWriter<byte> w, string s, string? tensor)
    {
        var escaped = new StringBuilder(s.Length + 2);
        escaped.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': escaped.Append("\\\""); break;
                case '\\': escaped.Append("\\\\"); break;
                case '\b': escaped.Append("\\b"); break;
                case '\f': escaped.Append("\\f"); break;
                case '\n': escaped.Append("\\n"); break;
                case '\r': escaped.Append("\\r"); break;
                case '\t': escaped.Append("\\t"); break;
                default:
                    if (c < 0x20)
                    {
                        escaped.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        escaped.Append(c);
                    }
                    break;
            }
        }
        escaped.Append('"');
        byte[] bytes;
        try
        {
            bytes = StrictUtf8.GetBytes(escaped.ToString());
        }
        catch (EncoderFallbackException ex)
        {
            var what = tensor is null ? $"Metadata string '{s}'" : $"Tensor name '{tensor}'";
            throw new ArgumentException($"{what} is not valid Unicode (unpaired surrogate).", ex);
        }
        w.Write(bytes);
    }
}
