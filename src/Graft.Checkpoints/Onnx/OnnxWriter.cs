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
    /// <para>The model and its data file are one output of two files, written so that every moment leaves a consistent
    /// pair: the new data goes to whichever of <c>OUT.data</c> and <c>OUT.b.data</c> the previous model at OUT does not
    /// use (<see cref="FilesReplacedBy"/>), staged with the model in the command's <see cref="OutputSet"/>; the data file
    /// is renamed into place first (the previous model never reads it), the model second (the commit), and only then is
    /// the previous model's data file deleted. A failure or crash at any point leaves the previous model with its own
    /// data, or the new model with its new data. A lock beside OUT keeps two writers from interleaving these steps.</para>
    /// <para>Initializers that are not replaced keep their references; when they are external, the output must be in the
    /// source's folder so those references still resolve. Both data names are outputs, checked by file identity against
    /// every file an input reads: a template whose data is <c>OUT.data</c> (under any name or linked folder) is refused.</para>
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
        if (sourceFull == outFull || CheckpointFile.IsSameFile(sourceFull, outFull))
        {
            throw new ArgumentException($"{outputPath}: the output must not be the source model, which is never opened for writing.", nameof(outputPath));
        }
        var set = OutputSet.CurrentOrNew(out var owned);
        try
        {
            ReplaceInitializersInto(set, modelPath, outputPath, payloads);
            if (owned)
            {
                set.Commit();
            }
        }
        finally
        {
            if (owned)
            {
                set.Dispose();
            }
        }
    }

    /// <summary>
    /// Every file writing the ONNX model <paramref name="outputPath"/> may replace or delete: the model and both names
    /// its external data file takes in turn (<c>OUT.data</c>, <c>OUT.b.data</c>).
    /// </summary>
    public static IReadOnlyList<string> FilesReplacedBy(string outputPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(outputPath);
        var full = Path.GetFullPath(outputPath);
        return [full, .. DataNames(full).Select(n => Path.Combine(Path.GetDirectoryName(full)!, n))];
    }

    /// <summary>The two names the output's external data file alternates between.</summary>
    private static string[] DataNames(string outFull) => [Path.GetFileName(outFull) + ".data", Path.GetFileName(outFull) + ".b.data"];

    /// <summary>
    /// Which of <see cref="DataNames"/> the model now at <paramref name="outFull"/> uses (read only as far as its
    /// initializers' locations; a missing or unreadable model uses none).
    /// </summary>
    private static HashSet<string> DataNamesInUse(string outFull)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        if (FileIdentity.Of(outFull) is not { Kind: FileKind.Regular } && !(File.Exists(outFull) && !FileIdentity.Supported))
        {
            return used;
        }
        var ours = DataNames(outFull);
        try
        {
            using var previous = OnnxReader.Open(outFull);
            foreach (var init in previous.Initializers)
            {
                if (init.Source is OnnxReader.ExternalSource ext && ours.Contains(ext.Location))
                {
                    used.Add(ext.Location);
                }
            }
        }
        catch (Exception ex) when (ex is CheckpointFormatException or IOException or UnauthorizedAccessException)
        {
            // Not a model we can read: it names nothing we would keep; its data name is simply reused.
        }
        return used;
    }

    private static void ReplaceInitializersInto(OutputSet set, string modelPath, string outputPath, IEnumerable<TensorPayload> payloads)
    {
        var sourceFull = Path.GetFullPath(modelPath);
        var outFull = Path.GetFullPath(outputPath);
        using var reader = OnnxReader.Open(modelPath);
        set.AddInput(reader, "template");
        set.Lock(outFull);
        foreach (var file in FilesReplacedBy(outFull))
        {
            set.AddOutput(file, "output");
        }
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
        }

        var outFolder = Path.GetDirectoryName(outFull)!;
        var inUse = DataNamesInUse(outFull);
        var dataName = DataNames(outFull).FirstOrDefault(n => !inUse.Contains(n))
            ?? throw new InvalidInputException($"{outputPath}: the model there uses both {string.Join(" and ", DataNames(outFull))}, so neither can take the new data without breaking it first; choose another output or remove it.");
        var dataPath = Path.Combine(outFolder, dataName);
        var keptExternal = reader.Initializers.Where(i => i.Source is OnnxReader.ExternalSource && !replacements.ContainsKey(i.Info.Name)).ToList();
        if (keptExternal.Count > 0 && outFolder != Path.GetDirectoryName(sourceFull))
        {
            throw new InvalidInputException(
                $"{outputPath}: initializer '{keptExternal[0].Info.Name}' stays in external data relative to the source's folder; write the output beside the source or replace it too.");
        }
        var externalOut = reader.Initializers.Where(i => i.Source is OnnxReader.ExternalSource && replacements.ContainsKey(i.Info.Name)).ToList();

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
        long graphLength = reader.Graph.ValueLength;
        foreach (var init in reader.Initializers.Where(i => heads.ContainsKey(i.Info.Name)))
        {
            var (head, payloadBytes) = heads[init.Info.Name];
            var value = head.Length + payloadBytes;
            graphLength += VarintSize(value) + value - (init.GraphField.End - init.GraphField.TagEnd);
        }
        var total = reader.FileLength + VarintSize(graphLength) + graphLength - (reader.Graph.End - reader.Graph.TagEnd);
        if (total > int.MaxValue)
        {
            throw new InvalidOperationException($"{outputPath}: the model would be {total} bytes, over protobuf's 2 GB limit; keep large weights in external data.");
        }

        if (externalOut.Count > 0)
        {
            set.Write(dataPath, s =>
            {
                foreach (var init in externalOut)
                {
                    PayloadStream.WriteExactly(replacements[init.Info.Name], s);
                }
            });
        }
        var byField = reader.Initializers.ToDictionary(i => i.GraphField.TagStart);
        set.Write(outFull, s =>
        {
            foreach (var f in reader.ModelFields)
            {
                if (f != reader.Graph)
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
        // The previous model's data file: no longer named once the new model is in place (the new data has the other name).
        foreach (var old in inUse)
        {
            set.DeleteOnCommit(Path.Combine(outFolder, old), "output");
        }
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
