using System.Buffers.Binary;
using System.Collections.ObjectModel;
using System.Text;

namespace Graft.Checkpoints.Onnx;

/// <summary>The graph half of the reader: nodes, graph inputs and outputs, and Constant-node weights.</summary>
public sealed unsafe partial class OnnxReader
{
    /// <summary>A node's field in the graph and its own fields (for the writer, which rewires inputs).</summary>
    internal sealed record NodeRecord(ProtobufField GraphField, List<ProtobufField> Fields);

    /// <summary>A graph input or output (<c>ValueInfoProto</c>): its field in the graph and its name.</summary>
    internal sealed record ValueRecord(ProtobufField GraphField, string Name);

    /// <summary>
    /// A tensor as the reader lists it: the name its consumer reads it by, the stored weight it comes from, and the
    /// (node, slot) consuming it (null for a weight no node uses).
    /// </summary>
    internal sealed record Entry(TensorInfo Info, Initializer Storage, WeightUse? Use);

    /// <summary>The model's <c>ir_version</c> (0 when absent).</summary>
    internal long IrVersion => (long)(ModelFields.LastOrDefault(f => f.Number == 1 && f.WireType == 0)?.Varint ?? 0);

    private sealed record ParsedGraph(OnnxGraph Graph, List<Initializer> Constants, List<NodeRecord> Nodes, List<ValueRecord> Inputs,
        List<ValueRecord> Outputs);

    private sealed partial class Parser
    {
        private static readonly UTF8Encoding LenientUtf8 = new(false, false);

        /// <summary>
        /// Parses the main graph's nodes (field 1), inputs (11) and outputs (12), lists each <c>Constant</c> node's
        /// floating-point tensor of rank 1 or more as a weight, and refuses sparse initializers (15). Subgraphs inside attributes are flagged, not descended into,
        /// so nesting costs nothing and hostile depth cannot recurse.
        /// </summary>
        private ParsedGraph ParseGraph(List<ProtobufField> graphFields, List<Initializer> inits)
        {
            var sparse = graphFields.FirstOrDefault(f => f.Number == 15);
            if (sparse is not null)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null,
                    $"the graph has a sparse_initializer (at offset {sparse.TagStart}); Graft reads dense initializers only. Densify it first (onnx: numpy_helper.to_array of the sparse tensor, stored as an initializer).");
            }
            var nodes = new List<OnnxNode>();
            var records = new List<NodeRecord>();
            var constants = new List<Initializer>();
            var inputs = new List<ValueRecord>();
            var outputs = new List<ValueRecord>();
            var hasSubgraphs = false;
            foreach (var f in graphFields)
            {
                switch (f.Number)
                {
                    case 1:
                        if (f.WireType != 2)
                        {
                            throw Corrupt(null, $"graph field 1 (node) at offset {f.TagStart} is not a message.");
                        }
                        var (node, fields, constant) = ParseNode(f, nodes.Count);
                        hasSubgraphs |= node.Attributes.Values.Any(a => a.HasGraph);
                        nodes.Add(node);
                        records.Add(new NodeRecord(f, fields));
                        if (constant is not null)
                        {
                            constants.Add(constant);
                        }
                        break;
                    case 11 or 12:
                        if (f.WireType != 2)
                        {
                            throw Corrupt(null, $"graph field {f.Number} ({(f.Number == 11 ? "input" : "output")}) at offset {f.TagStart} is not a message.");
                        }
                        var name = ValueInfoName(f);
                        (f.Number == 11 ? inputs : outputs).Add(new ValueRecord(f, name));
                        break;
                    default:
                        break;
                }
            }
            var names = new HashSet<string>(inits.Select(i => i.Info.Name), StringComparer.Ordinal);
            foreach (var c in constants)
            {
                if (!names.Add(c.Info.Name))
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.DuplicateName, path, c.Info.Name,
                        "a Constant node's output has the name of an initializer or of another Constant.");
                }
            }
            var graph = new OnnxGraph(path, nodes, inputs.Select(i => i.Name).ToList(), outputs.Select(o => o.Name).ToList(), names, hasSubgraphs);
            return new ParsedGraph(graph, constants, records, inputs, outputs);
        }

        private string ValueInfoName(ProtobufField f)
        {
            var fields = Fields(f.ValueStart, f.End, null, $"graph {(f.Number == 11 ? "input" : "output")} at offset {f.TagStart}");
            var nameField = fields.LastOrDefault(x => x.Number == 1 && x.WireType == 2);
            return nameField is null ? "" : Text(nameField, null, "value name");
        }

        private (OnnxNode Node, List<ProtobufField> Fields, Initializer? Constant) ParseNode(ProtobufField f, int index)
        {
            var what = $"node {index} at offset {f.TagStart}";
            var fields = Fields(f.ValueStart, f.End, null, what);
            string name = "", op = "", domain = "";
            var inputs = new List<string>();
            var outputs = new List<string>();
            foreach (var x in fields)
            {
                if (x.Number is >= 1 and <= 4 or 7 && x.WireType != 2)
                {
                    throw Corrupt(null, $"{what}: field {x.Number} has wire type {x.WireType}, not a string.");
                }
                switch (x.Number)
                {
                    case 1: inputs.Add(Text(x, null, $"{what}: input")); break;
                    case 2: outputs.Add(Text(x, null, $"{what}: output")); break;
                    case 3: name = Text(x, null, $"{what}: name"); break;
                    case 4: op = Text(x, null, $"{what}: op_type"); break;
                    case 7: domain = Text(x, null, $"{what}: domain"); break;
                    default: break;
                }
            }
            var label = name.Length > 0 ? $"node {index} '{name}' ({op})" : $"node {index} ({op})";
            if (op.Length == 0)
            {
                throw Corrupt(null, $"{label} at offset {f.TagStart} has no op_type.");
            }
            Dictionary<string, OnnxAttribute>? attributes = null;
            ProtobufField? valueTensor = null;
            foreach (var x in fields.Where(x => x.Number == 5))
            {
                if (x.WireType != 2)
                {
                    throw Corrupt(null, $"{label}: field 5 (attribute) is not a message.");
                }
                var (attribute, tensor) = ParseAttribute(x, label);
                attributes ??= new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
                if (!attributes.TryAdd(attribute.Name, attribute))
                {
                    throw Corrupt(null, $"{label}: attribute '{attribute.Name}' appears twice.");
                }
                if (attribute.Name == "value")
                {
                    valueTensor = tensor;
                }
            }
            var node = new OnnxNode(index, name, op, inputs.AsReadOnly(), outputs.AsReadOnly(),
                attributes is null ? OnnxNode.NoAttributes : new ReadOnlyDictionary<string, OnnxAttribute>(attributes))
            { Domain = domain };
            Initializer? constant = null;
            if (op == "Constant" && domain is "" or "ai.onnx" && valueTensor is not null)
            {
                if (outputs.Count != 1 || outputs[0].Length == 0)
                {
                    throw Corrupt(null, $"{label} has {outputs.Count} outputs; a Constant has one.");
                }
                // Listed under its output's name, whatever name (often none) the tensor carries inside. Only floating
                // tensors of rank 1 or more are weights: scalars (Clip bounds, Pow exponents) and integer tensors
                // (Reshape shapes, Slice starts) are part of the computation, and stay plain nodes.
                var tensor = ParseTensor(valueTensor, outputs[0]);
                if (tensor.Info.DType is DType.F32 or DType.F16 or DType.BF16 or DType.F64 && tensor.Info.Shape.Rank > 0)
                {
                    constant = tensor with { GraphField = f, ConstantNode = index };
                }
            }
            return (node, fields, constant);
        }

        private (OnnxAttribute Attribute, ProtobufField? Tensor) ParseAttribute(ProtobufField a, string label)
        {
            var fields = Fields(a.ValueStart, a.End, null, $"{label}: attribute");
            var nameField = fields.LastOrDefault(x => x.Number == 1 && x.WireType == 2)
                ?? throw Corrupt(null, $"{label}: an attribute at offset {a.TagStart} has no name.");
            var name = Text(nameField, null, $"{label}: attribute name");
            var what = $"{label}: attribute '{name}'";
            long? i = null;
            float? fl = null;
            string? s = null;
            List<long>? ints = null;
            List<float>? floats = null;
            ProtobufField? tensor = null;
            bool hasTensor = false, hasGraph = false;
            foreach (var x in fields)
            {
                switch (x.Number, x.WireType)
                {
                    case (2, 5):
                        fl = BinaryPrimitives.ReadSingleLittleEndian(new ReadOnlySpan<byte>(file + x.ValueStart, 4));
                        break;
                    case (3, 0):
                        i = (long)x.Varint;
                        break;
                    case (4, 2):
                        // Bytes, by the spec; decoded leniently (a string attribute names a mode, never a weight).
                        s = x.ValueLength <= 1 << 20 ? LenientUtf8.GetString(new ReadOnlySpan<byte>(file + x.ValueStart, (int)x.ValueLength)) : null;
                        break;
                    case (5, 2):
                        tensor = x;
                        hasTensor = true;
                        break;
                    case (10, 2) or (22, 2) or (23, 2):
                        hasTensor = true;
                        break;
                    case (6, 2) or (11, 2):
                        hasGraph = true;
                        break;
                    case (7, 5):
                        (floats ??= []).Add(BinaryPrimitives.ReadSingleLittleEndian(new ReadOnlySpan<byte>(file + x.ValueStart, 4)));
                        break;
                    case (7, 2):
                        if (x.ValueLength % 4 != 0)
                        {
                            throw Corrupt(null, $"{what}: packed floats of {x.ValueLength} bytes, not a multiple of 4.");
                        }
                        floats ??= [];
                        for (var p = x.ValueStart; p < x.End; p += 4)
                        {
                            floats.Add(BinaryPrimitives.ReadSingleLittleEndian(new ReadOnlySpan<byte>(file + p, 4)));
                        }
                        break;
                    case (8, 0) or (8, 2):
                        (ints ??= []).AddRange(Varints(x, what));
                        break;
                    case (2 or 3 or 4 or 5 or 6 or 7 or 8 or 10 or 11, _):
                        throw Corrupt(null, $"{what}: field {x.Number} has wire type {x.WireType}.");
                    default:
                        break;
                }
            }
            return (new OnnxAttribute(name, i, fl, ints?.AsReadOnly(), s) { Floats = floats?.AsReadOnly(), HasTensor = hasTensor, HasGraph = hasGraph }, tensor);
        }
    }

    /// <summary>
    /// The reader's tensors: every weight use under the name its consumer reads (one entry per consumer, so shared
    /// weights appear once per use), and each weight no node uses under its own name; ordered by weight (initializers in
    /// file order, then Constant nodes), then by consumer.
    /// </summary>
    private static List<Entry> ListEntries(OnnxGraph graph, List<Initializer> initializers, List<Initializer> constants)
    {
        var entries = new List<Entry>(initializers.Count + constants.Count);
        foreach (var storage in initializers.Concat(constants))
        {
            var uses = graph.UsesOf(storage.Info.Name);
            if (uses.Count == 0)
            {
                entries.Add(new Entry(storage.Info, storage, null));
                continue;
            }
            foreach (var use in uses)
            {
                var name = graph.TensorOf(use)!;
                entries.Add(new Entry(name == storage.Info.Name ? storage.Info : storage.Info with { Name = name }, storage, use));
            }
        }
        return entries;
    }
}
