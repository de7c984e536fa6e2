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

        if (Problems(reader, replacements.Keys) is { Count: > 0 } problems)
        {
            throw new InvalidInputException($"{modelPath}: {problems[0]}");
        }

        var outFolder = Path.GetDirectoryName(outFull)!;
        var inUse = DataNamesInUse(outFull);
        var dataName = DataNames(outFull).FirstOrDefault(n => !inUse.Contains(n))
            ?? throw new InvalidInputException($"{outputPath}: the model there uses both {string.Join(" and ", DataNames(outFull))}, so neither can take the new data without breaking it first; choose another output or remove it.");
        var dataPath = Path.Combine(outFolder, dataName);
        var plan = Plan(reader, replacements.Keys, replacements);
        var keptExternal = reader.Initializers.Where(i => i.Source is OnnxReader.ExternalSource && !plan.InPlace.ContainsKey(i) && !plan.Removed.Contains(i)).ToList();
        if (keptExternal.Count > 0 && outFolder != Path.GetDirectoryName(sourceFull))
        {
            throw new InvalidInputException(
                $"{outputPath}: initializer '{keptExternal[0].Info.Name}' stays in external data relative to the source's folder; write the output beside the source or replace it too.");
        }
        var externalOut = reader.Initializers.Where(i => i.Source is OnnxReader.ExternalSource && plan.InPlace.ContainsKey(i)).ToList();
        if (externalOut.Count > 0 && reader.ExternalFilePaths.Any(p => p == Path.GetFullPath(dataPath)))
        {
            throw new InvalidInputException($"{outputPath}: the new external data file '{dataName}' would overwrite the source's external data; choose another output name.");
        }

        // The graph's new body, as pieces: copied ranges of the source, new bytes, and tensor data (a payload, or a
        // template tensor copied from the source when an un-shared consumer keeps its value).
        var pieces = new List<Piece>();
        long externalOffset = 0;
        var byField = new Dictionary<long, OnnxReader.Initializer>();
        foreach (var i in reader.Initializers)
        {
            byField[i.GraphField.TagStart] = i;
        }
        var nodeByField = new Dictionary<long, int>();
        for (var n = 0; n < reader.NodeRecords.Count; n++)
        {
            nodeByField[reader.NodeRecords[n].GraphField.TagStart] = n;
        }
        foreach (var g in reader.GraphFields)
        {
            if (nodeByField.TryGetValue(g.TagStart, out var nodeIndex))
            {
                if (plan.RemovedNodes.Contains(nodeIndex))
                {
                    continue;
                }
                if (plan.Rewired.TryGetValue(nodeIndex, out var slots))
                {
                    pieces.Add(new BytesPiece(Rewired(reader, reader.NodeRecords[nodeIndex], slots)));
                    continue;
                }
            }
            else if (byField.TryGetValue(g.TagStart, out var init))
            {
                if (plan.Removed.Contains(init))
                {
                    continue;
                }
                if (plan.InPlace.TryGetValue(init, out var data))
                {
                    var head = new MemoryStream();
                    foreach (var f in reader.TensorFields(init).Where(f => !DataFields.Contains(f.Number)))
                    {
                        head.Write(reader.Bytes(f.TagStart, checked((int)(f.End - f.TagStart))));
                    }
                    var cos = new CodedOutputStream(head, leaveOpen: true);
                    Piece? payload = null;
                    if (init.Source is OnnxReader.ExternalSource)
                    {
                        WriteEntry(cos, "location", dataName);
                        WriteEntry(cos, "offset", externalOffset.ToString(CultureInfo.InvariantCulture));
                        WriteEntry(cos, "length", data.ByteLength.ToString(CultureInfo.InvariantCulture));
                        cos.WriteTag(14, WireFormat.WireType.Varint);
                        cos.WriteEnum(1);
                        externalOffset = checked(externalOffset + data.ByteLength);
                    }
                    else
                    {
                        cos.WriteTag(9, WireFormat.WireType.LengthDelimited);
                        cos.WriteUInt64((ulong)data.ByteLength);
                        payload = data;
                    }
                    cos.Flush();
                    var value = head.Length + (payload?.Length ?? 0);
                    pieces.Add(new CopyPiece(g.TagStart, g.TagEnd));
                    pieces.Add(new BytesPiece(Varint(value)));
                    pieces.Add(new BytesPiece(head.ToArray()));
                    if (payload is not null)
                    {
                        pieces.Add(payload);
                    }
                    continue;
                }
            }
            pieces.Add(new CopyPiece(g.TagStart, g.End));
        }
        // Un-shared weights: one new initializer per consumer, after the graph's other fields.
        foreach (var (entry, data) in plan.Added)
        {
            var head = new MemoryStream();
            foreach (var f in reader.TensorFields(entry.Storage).Where(f => !DataFields.Contains(f.Number) && f.Number != 8))
            {
                head.Write(reader.Bytes(f.TagStart, checked((int)(f.End - f.TagStart))));
            }
            var cos = new CodedOutputStream(head, leaveOpen: true);
            cos.WriteTag(8, WireFormat.WireType.LengthDelimited);
            cos.WriteString(entry.Info.Name);
            cos.WriteTag(9, WireFormat.WireType.LengthDelimited);
            cos.WriteUInt64((ulong)data.Length);
            cos.Flush();
            var value = head.Length + data.Length;
            pieces.Add(new BytesPiece(Tag(5)));
            pieces.Add(new BytesPiece(Varint(value)));
            pieces.Add(new BytesPiece(head.ToArray()));
            pieces.Add(data);
        }

        long graphLength = 0;
        foreach (var p in pieces)
        {
            graphLength = checked(graphLength + p.Length);
        }
        var graphField = reader.GraphField;
        var total = reader.FileLength + VarintSize(graphLength) + graphLength - (graphField.End - graphField.TagEnd);
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
                    plan.InPlace[init].WriteTo(reader, s);
                }
            });
        }
        set.Write(outFull, s =>
        {
            foreach (var f in reader.ModelFields)
            {
                if (f != graphField)
                {
                    reader.CopyRange(f.TagStart, f.End, s);
                    continue;
                }
                reader.CopyRange(f.TagStart, f.TagEnd, s);
                WriteVarint(s, graphLength);
                foreach (var p in pieces)
                {
                    p.WriteTo(reader, s);
                }
            }
        });
        // The previous model's data file: no longer named once the new model is in place (the new data has the other name).
        foreach (var old in inUse)
        {
            set.DeleteOnCommit(Path.Combine(outFolder, old), "output");
        }
    }

    /// <summary>
    /// Why the named tensors of <paramref name="reader"/> cannot be given their own values in an output (empty when
    /// they can): the cases where un-sharing a weight would need more than new initializers and rewired inputs.
    /// </summary>
    internal static IReadOnlyList<string> Problems(OnnxReader reader, IEnumerable<string> names)
    {
        var problems = new List<string>();
        var graph = reader.Graph;
        foreach (var storage in Plan(reader, names).Materialized)
        {
            var what = storage.ConstantNode >= 0 ? $"the Constant node holding '{storage.Info.Name}'" : $"initializer '{storage.Info.Name}'";
            if (graph.HasSubgraphs)
            {
                problems.Add($"{what} feeds several nodes or is held in a Constant node, and the graph has subgraphs (control flow) whose uses Graft does not see; giving each consumer its own value is refused.");
                continue;
            }
            if (reader.IrVersion is > 0 and < 4)
            {
                problems.Add($"{what} feeds several nodes; giving each its own value needs new initializers, which IR version {reader.IrVersion} models must also declare as graph inputs; refused.");
                continue;
            }
            var chain = Chain(reader, storage).Select(n => graph.Nodes[n].Outputs[0]).Append(storage.Info.Name);
            var exposed = chain.FirstOrDefault(v => graph.GraphOutputs.Contains(v) || reader.InputRecords.Any(i => i.Name == v));
            if (exposed is not null)
            {
                problems.Add($"{what} feeds several nodes and '{exposed}' is also a graph input or output; giving each consumer its own value is refused.");
            }
        }
        return problems;
    }

    /// <summary>What the output changes.</summary>
    private sealed class WritePlan
    {
        /// <summary>Initializers rewritten where they stand, with their new data.</summary>
        public Dictionary<OnnxReader.Initializer, TensorData> InPlace { get; } = new(ReferenceEqualityComparer.Instance);

        /// <summary>Initializers dropped (their consumers now read new ones).</summary>
        public HashSet<OnnxReader.Initializer> Removed { get; } = new(ReferenceEqualityComparer.Instance);

        /// <summary>Weights given one initializer per consumer.</summary>
        public List<OnnxReader.Initializer> Materialized { get; } = [];

        /// <summary>New initializers: the entry (its name, its stored weight's fields) and its data.</summary>
        public List<(OnnxReader.Entry Entry, TensorData Data)> Added { get; } = [];

        /// <summary>Identity and Constant nodes dropped.</summary>
        public HashSet<int> RemovedNodes { get; } = [];

        /// <summary>Nodes whose input slots now read another name.</summary>
        public Dictionary<int, Dictionary<int, string>> Rewired { get; } = [];
    }

    /// <summary>
    /// Decides, per stored weight: nothing (no entry replaced), in place (an initializer read by one consumer under its
    /// own name, or by none), or un-shared: every consumer gets its own initializer named as the reader lists it, holding
    /// its payload or, when not replaced, the template's value; the Identity nodes that shared it and a Constant that
    /// held it go, and inputs read under a derived name (<c>W@node</c>) are rewired. A consumer never reads another
    /// consumer's value.
    /// </summary>
    private static WritePlan Plan(OnnxReader reader, IEnumerable<string> names, Dictionary<string, TensorPayload>? payloads = null)
    {
        var replaced = new HashSet<string>(names, StringComparer.Ordinal);
        var plan = new WritePlan();
        foreach (var group in reader.Entries.GroupBy(e => e.Storage, ReferenceEqualityComparer.Instance))
        {
            var storage = (OnnxReader.Initializer)group.Key!;
            var entries = group.ToList();
            if (!entries.Any(e => replaced.Contains(e.Info.Name)))
            {
                continue;
            }
            TensorData DataOf(OnnxReader.Entry e) =>
                payloads is not null && payloads.TryGetValue(e.Info.Name, out var p) ? new PayloadData(p) : new TemplateData(e.Info);
            if (storage.ConstantNode < 0 && entries.Count == 1 && entries[0].Info.Name == storage.Info.Name)
            {
                plan.InPlace[storage] = DataOf(entries[0]);
                continue;
            }
            plan.Materialized.Add(storage);
            foreach (var n in Chain(reader, storage))
            {
                plan.RemovedNodes.Add(n);
            }
            var keepsName = false;
            foreach (var e in entries)
            {
                if (storage.ConstantNode < 0 && e.Info.Name == storage.Info.Name)
                {
                    // The consumer reading the initializer directly keeps it, with its own value.
                    plan.InPlace[storage] = DataOf(e);
                    keepsName = true;
                    continue;
                }
                plan.Added.Add((e, DataOf(e)));
                if (e.Use is { } use && reader.Graph.InputOf(use) != e.Info.Name)
                {
                    if (!plan.Rewired.TryGetValue(use.Node, out var slots))
                    {
                        plan.Rewired[use.Node] = slots = [];
                    }
                    slots[use.Slot] = e.Info.Name;
                }
            }
            if (storage.ConstantNode >= 0)
            {
                plan.RemovedNodes.Add(storage.ConstantNode);
            }
            else if (!keepsName)
            {
                plan.Removed.Add(storage);
            }
        }
        return plan;
    }

    /// <summary>The Identity nodes whose input resolves to <paramref name="storage"/> (the chains sharing it).</summary>
    private static List<int> Chain(OnnxReader reader, OnnxReader.Initializer storage)
    {
        var graph = reader.Graph;
        return graph.Nodes.Where(n => n.OpType == "Identity" && n.Inputs.Count > 0 && graph.WeightOf(n.Inputs[0]) == storage.Info.Name)
            .Select(n => n.Index).ToList();
    }

    /// <summary>A node's field re-encoded with some input slots renamed; every other field copied as it was.</summary>
    private static byte[] Rewired(OnnxReader reader, OnnxReader.NodeRecord node, Dictionary<int, string> slots)
    {
        var body = new MemoryStream();
        var slot = 0;
        foreach (var f in node.Fields)
        {
            if (f.Number == 1 && f.WireType == 2)
            {
                if (slots.TryGetValue(slot++, out var name))
                {
                    var cos = new CodedOutputStream(body, leaveOpen: true);
                    cos.WriteTag(1, WireFormat.WireType.LengthDelimited);
                    cos.WriteString(name);
                    cos.Flush();
                    continue;
                }
            }
            body.Write(reader.Bytes(f.TagStart, checked((int)(f.End - f.TagStart))));
        }
        var result = new MemoryStream();
        result.Write(reader.Bytes(node.GraphField.TagStart, checked((int)(node.GraphField.TagEnd - node.GraphField.TagStart))));
        result.Write(Varint(body.Length));
        body.Position = 0;
        body.CopyTo(result);
        return result.ToArray();
    }

    private static byte[] Tag(int field)
    {
        var buffer = new byte[CodedOutputStream.ComputeTagSize(field)];
        var cos = new CodedOutputStream(buffer);
        cos.WriteTag(field, WireFormat.WireType.LengthDelimited);
        cos.Flush();
        return buffer;
    }

    private static byte[] Varint(long v)
    {
        var buffer = new byte[VarintSize(v)];
        var cos = new CodedOutputStream(buffer);
        cos.WriteUInt64((ulong)v);
        cos.Flush();
        return buffer;
    }

    /// <summary>A piece of the output graph's body.</summary>
    private abstract class Piece
    {
        public abstract long Length { get; }

        public abstract void WriteTo(OnnxReader reader, Stream destination);
    }

    private sealed class CopyPiece(long start, long end) : Piece
    {
        public override long Length => end - start;

        public override void WriteTo(OnnxReader reader, Stream destination) => reader.CopyRange(start, end, destination);
    }

    private sealed class BytesPiece(byte[] bytes) : Piece
    {
        public override long Length => bytes.Length;

        public override void WriteTo(OnnxReader reader, Stream destination) => destination.Write(bytes);
    }

    /// <summary>A tensor's bytes.</summary>
    private abstract class TensorData : Piece
    {
        public long ByteLength => Length;
    }

    private sealed class PayloadData(TensorPayload payload) : TensorData
    {
        public override long Length => payload.ByteLength;

        public override void WriteTo(OnnxReader reader, Stream destination) => PayloadStream.WriteExactly(payload, destination);
    }

    /// <summary>A template tensor's own bytes, for a consumer that gets its own copy of a value it keeps.</summary>
    private sealed class TemplateData(TensorInfo tensor) : TensorData
    {
        public override long Length => tensor.ByteLength;

        public override void WriteTo(OnnxReader reader, Stream destination) => reader.CopyTo(tensor, destination);
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

    private static void WriteVarint(Stream s, long v) => s.Write(Varint(v));
}
