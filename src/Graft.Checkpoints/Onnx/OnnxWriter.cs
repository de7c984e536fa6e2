using System.Globalization;
using Google.Protobuf;

namespace Graft.Checkpoints.Onnx;

/// <summary>
/// Writes an ONNX model with some initializers replaced and every other byte copied from the source: the graph's
/// nodes, inputs, outputs, attributes and all other fields are untouched, so the model computes the same function
/// with new weights. Only the length prefixes of the graph and of each replaced initializer change.
/// </summary>
public static class OnnxWriter
{
    /// <summary>TensorProto fields that hold or locate data; a replaced initializer drops them and gets new ones.</summary>
    private static readonly HashSet<int> DataFields = [4, 5, 6, 7, 9, 10, 11, 13, 14];

    /// <summary>
    /// Copies <paramref name="modelPath"/> to <paramref name="outputPath"/>, replacing each initializer named by a
    /// payload. A replaced initializer keeps its other fields (dims, data_type, name, doc_string) in their order and
    /// gets its bytes as <c>raw_data</c>, or, when the source kept it in external data, in a new external data file
    /// <c>&lt;output file name&gt;.data</c> beside the output (the source's external files are never written).
    /// </summary>
    /// <remarks>
    /// The external data file is written first and the model last, each atomically, so a crash leaves at worst an
    /// unreferenced data file, never a model pointing at missing data. Initializers that are not replaced keep their
    /// references; when they are external, the output must be in the source's folder so those references still resolve.
    /// </remarks>
    /// <exception cref="ArgumentException">A payload names no initializer, differs from it in dtype or shape, or appears
    /// twice; or the output is the source.</exception>
    /// <exception cref="InvalidInputException">The output's folder would break references to external data that is not
    /// replaced, or its external data file would overwrite the source's: another output path fixes it.</exception>
    /// <exception cref="CheckpointFormatException">The source model is malformed.</exception>
    /// <exception cref="InvalidOperationException">The output would exceed protobuf's 2 GB limit, or a payload wrote the wrong number of bytes.</exception>
    public static void ReplaceInitializers(string modelPath, string outputPath, IEnumerable<TensorPayload> payloads)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        ArgumentException.ThrowIfNullOrEmpty(outputPath);
        ArgumentNullException.ThrowIfNull(payloads);
        var sourceFull = Path.GetFullPath(modelPath);
        var outFull = Path.GetFullPath(outputPath);
        if (sourceFull == outFull)
        {
            throw new ArgumentException($"{outputPath}: the output must not be the source model, which is never opened for writing.", nameof(outputPath));
        }
        using var reader = OnnxReader.Open(modelPath);
        var replacements = new Dictionary<string, TensorPayload>(StringComparer.Ordinal);
        foreach (var p in payloads)
        {
            ArgumentNullException.ThrowIfNull(p, nameof(payloads));
            if (!reader.TryGetTensor(p.Name, out var info))
            {
                throw new ArgumentException($"Tensor '{p.Name}' is not an initializer of {modelPath}.", nameof(payloads));
            }
            if (info.DType != p.DType || info.Shape != p.Shape)
            {
                throw new ArgumentException($"Tensor '{p.Name}' is {p.Shape} {p.DType}; the initializer it replaces is {info.Shape} {info.DType}.", nameof(payloads));
            }
            if (!replacements.TryAdd(p.Name, p))
            {
                throw new ArgumentException($"Tensor '{p.Name}' is given more than once.", nameof(payloads));
            }
            var entry = reader.Find(info);
            if (entry.Storage.ConstantNode >= 0 || entry.Info.Name != entry.Storage.Info.Name
                || reader.Entries.Count(e => ReferenceEquals(e.Storage, entry.Storage)) > 1)
            {
                throw new InvalidInputException(
                    $"{modelPath}: tensor '{p.Name}' is stored in a Constant node or shared with other nodes (initializer '{entry.Storage.Info.Name}'); writing it is not supported yet.");
            }
        }

        var outFolder = Path.GetDirectoryName(outFull)!;
        var dataName = Path.GetFileName(outFull) + ".data";
        var dataPath = Path.Combine(outFolder, dataName);
        var keptExternal = reader.Initializers.Where(i => i.Source is OnnxReader.ExternalSource && !replacements.ContainsKey(i.Info.Name)).ToList();
        if (keptExternal.Count > 0 && outFolder != Path.GetDirectoryName(sourceFull))
        {
            throw new InvalidInputException(
                $"{outputPath}: initializer '{keptExternal[0].Info.Name}' stays in external data relative to the source's folder; write the output beside the source or replace it too.");
        }
        var externalOut = reader.Initializers.Where(i => i.Source is OnnxReader.ExternalSource && replacements.ContainsKey(i.Info.Name)).ToList();
        if (externalOut.Count > 0 && reader.ExternalFilePaths.Any(p => p == Path.GetFullPath(dataPath)))
        {
            throw new InvalidInputException($"{outputPath}: the new external data file '{dataName}' would overwrite the source's external data; choose another output name.");
        }

        // New encodings of the replaced initializers: kept fields, then the data fields.
        var heads = new Dictionary<string, (byte[] Head, long PayloadBytes)>(StringComparer.Ordinal);
        long externalOffset = 0;
        foreach (var init in reader.Initializers)
        {
            if (!replacements.TryGetValue(init.Info.Name, out var p))
            {
                continue;
            }
            var ms = new MemoryStream();
            foreach (var f in init.Fields.Where(f => !DataFields.Contains(f.Number)))
            {
                ms.Write(reader.Bytes(f.TagStart, checked((int)(f.End - f.TagStart))));
            }
            var cos = new CodedOutputStream(ms, leaveOpen: true);
            long payloadBytes;
            if (init.Source is OnnxReader.ExternalSource)
            {
                WriteEntry(cos, "location", dataName);
                WriteEntry(cos, "offset", externalOffset.ToString(CultureInfo.InvariantCulture));
                WriteEntry(cos, "length", p.ByteLength.ToString(CultureInfo.InvariantCulture));
                cos.WriteTag(14, WireFormat.WireType.Varint);
                cos.WriteEnum(1);
                externalOffset = checked(externalOffset + p.ByteLength);
                payloadBytes = 0;
            }
            else
            {
                cos.WriteTag(9, WireFormat.WireType.LengthDelimited);
                cos.WriteUInt64((ulong)p.ByteLength);
                payloadBytes = p.ByteLength;
            }
            cos.Flush();
            heads[init.Info.Name] = (ms.ToArray(), payloadBytes);
        }

        // New graph length: the old one, less each replaced initializer's value, plus its new value and length prefix.
        long graphLength = reader.GraphField.ValueLength;
        foreach (var init in reader.Initializers.Where(i => heads.ContainsKey(i.Info.Name)))
        {
            var (head, payloadBytes) = heads[init.Info.Name];
            var value = head.Length + payloadBytes;
            graphLength += VarintSize(value) + value - (init.GraphField.End - init.GraphField.TagEnd);
        }
        var total = reader.FileLength + VarintSize(graphLength) + graphLength - (reader.GraphField.End - reader.GraphField.TagEnd);
        if (total > int.MaxValue)
        {
            throw new InvalidOperationException($"{outputPath}: the model would be {total} bytes, over protobuf's 2 GB limit; keep large weights in external data.");
        }

        if (externalOut.Count > 0)
        {
            AtomicFile.Write(dataPath, s =>
            {
                foreach (var init in externalOut)
                {
                    PayloadStream.WriteExactly(replacements[init.Info.Name], s);
                }
            });
        }
        var byField = reader.Initializers.ToDictionary(i => i.GraphField.TagStart);
        AtomicFile.Write(outputPath, s =>
        {
            foreach (var f in reader.ModelFields)
            {
                if (f != reader.GraphField)
                {
                    reader.CopyRange(f.TagStart, f.End, s);
                    continue;
                }
                reader.CopyRange(f.TagStart, f.TagEnd, s);
                WriteVarint(s, graphLength);
                foreach (var g in reader.GraphFields)
                {
                    if (!byField.TryGetValue(g.TagStart, out var init) || !heads.TryGetValue(init.Info.Name, out var h))
                    {
                        reader.CopyRange(g.TagStart, g.End, s);
                        continue;
                    }
                    reader.CopyRange(g.TagStart, g.TagEnd, s);
                    WriteVarint(s, h.Head.Length + h.PayloadBytes);
                    s.Write(h.Head);
                    if (h.PayloadBytes > 0)
                    {
                        PayloadStream.WriteExactly(replacements[init.Info.Name], s);
                    }
                }
            }
        });
    }

    private static void WriteEntry(CodedOutputStream cos, string key, string value)
    {
        cos.WriteTag(13, WireFormat.WireType.LengthDelimited);
        cos.WriteLength(CodedOutputStream.ComputeStringSize(key) + CodedOutputStream.ComputeStringSize(value) + 2);
        cos.WriteTag(1, WireFormat.WireType.LengthDelimited);
        cos.WriteString(key);
        cos.WriteTag(2, WireFormat.WireType.LengthDelimited);
        cos.WriteString(value);
    }

    private static int VarintSize(long v) => CodedOutputStream.ComputeUInt64Size((ulong)v);

    private static void WriteVarint(Stream s, long v)
    {
        var buffer = new byte[VarintSize(v)];
        var cos = new CodedOutputStream(buffer);
        cos.WriteUInt64((ulong)v);
        cos.Flush();
        s.Write(buffer);
    }
}
