using System.Buffers.Binary;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Text;
using Google.Protobuf;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints.Onnx;

/// <summary>
/// Reads the initializers (the weights) of an ONNX model at the protobuf wire level, without generated code: the file
/// is mapped read-only, <c>ModelProto.graph</c> (field 7) and its <c>initializer</c> entries (field 5) are indexed, and
/// each initializer's bytes are read on demand from wherever they are: a <c>raw_data</c> slice of the model, a typed
/// repeated field (converted to little-endian bytes on read), or an external data file beside the model.
/// </summary>
/// <remarks>
/// The main graph is read as a graph too (<see cref="Graph"/>): its nodes, and the weights held in <c>Constant</c> nodes,
/// which are listed beside the initializers. <see cref="Tensors"/> lists each weight once per consumer, under the value
/// name that consumer reads (see <see cref="OnnxGraph"/>). Sparse initializers are refused; initializers of subgraphs
/// (inside <c>If</c>/<c>Loop</c> attributes) are not listed. External data locations must stay inside the model's folder
/// (absolute paths, <c>..</c> and links leading out are refused); external files are opened once at open time, and
/// reads go to those handles, so a link swapped afterwards is not followed.
/// </remarks>
public sealed unsafe partial class OnnxReader : ICheckpointReader
{
    /// <summary>Largest rank accepted.</summary>
    internal const int MaxRank = 1024;

    private const int CopyChunkSize = 1 << 20;

    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, SafeFileHandle> _externalFiles;
    private readonly TensorIndex<Entry> _index;

    private OnnxReader(string path, SafeFileHandle handle, long length, Parsed parsed)
    {
        Path = path;
        _handle = handle;
        FileLength = length;
        _externalFiles = parsed.ExternalFiles;
        ModelFields = parsed.ModelFields;
        GraphField = parsed.Graph;
        GraphFields = parsed.GraphFields;
        Initializers = parsed.Initializers;
        Graph = parsed.Nodes.Graph;
        Constants = parsed.Nodes.Constants;
        NodeRecords = parsed.Nodes.Nodes;
        InputRecords = parsed.Nodes.Inputs;
        OutputRecords = parsed.Nodes.Outputs;
        Entries = ListEntries(Graph, Initializers, Constants);
        _index = new TensorIndex<Entry>(path, Entries, static e => e.Info, "initializer");
        Metadata = new ReadOnlyDictionary<string, string>(parsed.Metadata);
    }

    /// <inheritdoc/>
    public string Path { get; }

    /// <inheritdoc/>
    public string Format => OnnxFormat.FormatName;

    /// <summary>
    /// The weights (initializers and <c>Constant</c> nodes' tensors), one per consumer under the value name that
    /// consumer reads, so a weight shared by several nodes (directly or through <c>Identity</c>) is listed once per
    /// node; a weight no node reads is listed under its own name. For a model without sharing these are the
    /// initializers in file order, then the Constants.
    /// </summary>
    public IReadOnlyList<TensorInfo> Tensors => _index.Tensors;

    /// <summary>The main graph: nodes, data flow, and which node and slot each weight feeds.</summary>
    public OnnxGraph Graph { get; }

    /// <summary>
    /// The model's <c>metadata_props</c>, plus <c>ir_version</c>, <c>producer_name</c> and <c>producer_version</c> when
    /// the model sets them and <c>metadata_props</c> does not use those keys.
    /// </summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    internal long FileLength { get; }

    /// <summary>The real paths of the external data files this model reads.</summary>
    internal IEnumerable<string> ExternalDataPaths => _externalFiles.Keys;

    internal List<ProtobufField> ModelFields { get; }

    internal ProtobufField GraphField { get; }

    internal List<ProtobufField> GraphFields { get; }

    internal List<Initializer> Initializers { get; }

    /// <summary>The weights held in Constant nodes (their <see cref="Initializer.GraphField"/> is the node's field).</summary>
    internal List<Initializer> Constants { get; }

    internal List<NodeRecord> NodeRecords { get; }

    internal List<ValueRecord> InputRecords { get; }

    internal List<ValueRecord> OutputRecords { get; }

    internal List<Entry> Entries { get; }

    /// <summary>True when the tensor's bytes live in an external data file rather than in the model.</summary>
    /// <exception cref="ArgumentException">The tensor is not an initializer of this model.</exception>
    public bool IsExternal(TensorInfo tensor) => Find(tensor).Storage.Source is ExternalSource;

    /// <summary>Maps and validates a model and its external data references.</summary>
    /// <exception cref="CheckpointFormatException">The model is malformed or hostile; <see cref="CheckpointFormatException.Kind"/> says how.</exception>
    /// <exception cref="FileNotFoundException">The model or an external data file does not exist.</exception>
    public static OnnxReader Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var handle = FileIdentity.OpenInput(path);
        MappedFile? file = null;
        Parsed? parsed = null;
        try
        {
            if (RandomAccess.GetLength(handle) == 0)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.TooShort, path, null, "file is empty; an ONNX model has at least a graph.");
            }
            // Mapped while the structure is parsed, then unmapped: later reads go through the handle (FileRead), so a
            // model truncated while it is open is a read error, never a SIGBUS.
            file = MappedFile.Map(handle);
            var length = file.Length;
            parsed = new Parser(path, file.Pointer, length).Parse();
            file.Dispose();
            return new OnnxReader(path, handle, length, parsed);
        }
        catch
        {
            if (parsed is not null)
            {
                foreach (var h in parsed.ExternalFiles.Values)
                {
                    h.Dispose();
                }
            }
            file?.Dispose();
            handle.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public bool TryGetTensor(string name, out TensorInfo info) => _index.TryGetTensor(name, out info);

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The tensor is not an initializer of this model, or the destination has the wrong length.</exception>
    public void ReadBytes(TensorInfo tensor, Span<byte> destination)
    {
        var init = _index.FindForRead(tensor, destination).Storage;
        switch (init.Source)
        {
            case RawSource raw:
                FileRead.Exactly(_handle, raw.Offset, destination, Path, tensor.Name);
                break;
            case TypedSource typed:
                DecodeTyped(init.Info, typed, destination);
                break;
            case ExternalSource ext:
                ReadExternal(tensor.Name, ext, ext.Offset, destination);
                break;
            default:
                break;
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The tensor is not an initializer of this model.</exception>
    public void CopyTo(TensorInfo tensor, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var init = Find(tensor).Storage;
        switch (init.Source)
        {
            case RawSource raw:
                FileRead.CopyRange(_handle, raw.Offset, init.Info.ByteLength, destination, Path, tensor.Name, CopyChunkSize);
                break;
            case ExternalSource ext:
                ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
                FileRead.CopyRange(_externalFiles[ext.RealPath], ext.Offset, init.Info.ByteLength, destination, ext.RealPath, tensor.Name, CopyChunkSize);
                break;
            default:
                // Typed fields hold small tensors (ONNX writers switch to raw_data for anything large).
                var bytes = new byte[init.Info.ByteLength];
                ReadBytes(tensor, bytes);
                destination.Write(bytes);
                break;
        }
    }

    /// <summary>Releases the model file and every external data file.</summary>
    public void Dispose()
    {
        if (_handle.IsClosed)
        {
            return;
        }
        foreach (var h in _externalFiles.Values)
        {
            h.Dispose();
        }
        _handle.Dispose();
    }

    /// <summary>A range of the model's bytes (read with pread; the model is not mapped after opening).</summary>
    internal byte[] Bytes(long offset, int length)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        var bytes = new byte[length];
        FileRead.Exactly(_handle, offset, bytes, Path, null);
        return bytes;
    }

    /// <summary>Copies a range of the model to a stream in bounded chunks.</summary>
    internal void CopyRange(long start, long end, Stream destination)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        FileRead.CopyRange(_handle, start, end - start, destination, Path, null, CopyChunkSize);
    }

    internal Entry Find(TensorInfo tensor) => _index.Find(tensor);

    /// <summary>The fields of a weight's TensorProto, read again from the file (headers only, not the data).</summary>
    internal List<ProtobufField> TensorFields(Initializer weight)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        var t = weight.TensorField;
        return ProtobufWire.Fields(_handle, Path, t.ValueStart, t.End, weight.Info.Name, $"initializer at offset {t.TagStart}");
    }

    internal IEnumerable<string> ExternalFilePaths => _externalFiles.Keys;

    private void ReadExternal(string tensor, ExternalSource ext, long offset, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        FileRead.Exactly(_externalFiles[ext.RealPath], offset, destination, ext.RealPath, tensor);
    }

    private void DecodeTyped(TensorInfo info, TypedSource typed, Span<byte> destination)
    {
        var size = info.DType.ElementSize();
        var index = 0;
        foreach (var seg in typed.Segments)
        {
            var input = new CodedInputStream(Bytes(seg.Start, checked((int)seg.Length)));
            var packed = seg.Packed;
            while (!input.IsAtEnd)
            {
                var slot = destination.Slice(index * size, size);
                switch (typed.Field)
                {
                    case 4:
                        BinaryPrimitives.WriteSingleLittleEndian(slot, input.ReadFloat());
                        break;
                    case 10:
                        BinaryPrimitives.WriteDoubleLittleEndian(slot, input.ReadDouble());
                        break;
                    case 7:
                        BinaryPrimitives.WriteInt64LittleEndian(slot, input.ReadInt64());
                        break;
                    case 11:
                        var u = input.ReadUInt64();
                        if (size == 4)
                        {
                            BinaryPrimitives.WriteUInt32LittleEndian(slot, (uint)u);
                        }
                        else
                        {
                            BinaryPrimitives.WriteUInt64LittleEndian(slot, u);
                        }
                        break;
                    default:
                        // int32_data carries every type of 32 bits or fewer; keep the low bytes (float16 bits, int8 …).
                        var v = input.ReadInt32();
                        for (var b = 0; b < size; b++)
                        {
                            slot[b] = (byte)(v >> (8 * b));
                        }
                        break;
                }
                index++;
                if (!packed)
                {
                    break;
                }
            }
        }
    }

    /// <summary>Where an initializer's bytes are.</summary>
    internal abstract record Source;

    internal sealed record RawSource(long Offset) : Source;

    internal sealed record TypedSource(int Field, List<Segment> Segments) : Source;

    internal sealed record ExternalSource(string Location, string RealPath, long Offset) : Source;

    internal sealed record EmptySource : Source
    {
        /// <summary>The one instance (a model of many empty tensors needs no object per tensor for this).</summary>
        public static readonly EmptySource Instance = new();
    }

    internal sealed record Segment(long Start, long Length, bool Packed);

    /// <summary>
    /// A stored weight (an initializer, or a Constant node's tensor when <see cref="ConstantNode"/> is set): its
    /// description, its field in the graph (the node's, for a Constant), its TensorProto's fields, and its data source.
    /// </summary>
    /// <remarks>
    /// The TensorProto's own fields are not kept (a model of 100,000 initializers would hold a few hundred thousand
    /// records for them); <see cref="TensorFields"/> reads them again when a writer needs them.
    /// </remarks>
    internal sealed record Initializer(TensorInfo Info, ProtobufField GraphField, ProtobufField TensorField, Source Source)
    {
        /// <summary>The index of the Constant node holding this tensor; -1 for an initializer.</summary>
        public int ConstantNode { get; init; } = -1;
    }

    private sealed record Parsed(List<ProtobufField> ModelFields, ProtobufField Graph, List<ProtobufField> GraphFields, List<Initializer> Initializers,
        Dictionary<string, string> Metadata, Dictionary<string, SafeFileHandle> ExternalFiles, ParsedGraph Nodes);

    /// <summary>The one validation routine: model fields, the graph, then each initializer in order.</summary>
    private sealed partial class Parser(string path, byte* file, long length)
    {
        private readonly ProtobufWire _wire = new(path, file);
        private readonly Dictionary<Shape, Shape> _shapes = [];
        private readonly Dictionary<string, SafeFileHandle> _external = new(StringComparer.Ordinal);

        public Parsed Parse()
        {
            try
            {
                return ParseModel();
            }
            catch
            {
                foreach (var h in _external.Values)
                {
                    h.Dispose();
                }
                throw;
            }
        }

        private Parsed ParseModel()
        {
            var model = Fields(0, length, null, "model");
            var graphs = model.Where(f => f.Number == 7).ToList();
            if (graphs.Count != 1 || graphs[0].WireType != 2)
            {
                throw Corrupt(null, graphs.Count == 0
                    ? "the model has no graph (field 7); is this an ONNX model?"
                    : "the model's graph field (7) appears more than once or is not a message.");
            }
            var graph = graphs[0];
            var graphFields = Fields(graph.ValueStart, graph.End, null, "graph");
            var inits = new List<Initializer>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var f in graphFields.Where(f => f.Number == 5))
            {
                if (f.WireType != 2)
                {
                    throw Corrupt(null, $"graph field 5 (initializer) at offset {f.TagStart} is not a message.");
                }
                var init = ParseTensor(f);
                if (!seen.Add(init.Info.Name))
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.DuplicateName, path, init.Info.Name, "two initializers have this name.");
                }
                inits.Add(init);
            }
            return new Parsed(model, graph, graphFields, inits, Metadata(model), _external, ParseGraph(graphFields, inits));
        }

        private Dictionary<string, string> Metadata(List<ProtobufField> model)
        {
            var m = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var f in model.Where(f => f.Number == 14 && f.WireType == 2))
            {
                var (k, v) = KeyValue(f, null);
                m[k] = v;
            }
            foreach (var f in model)
            {
                if (f.Number == 1 && f.WireType == 0)
                {
                    m.TryAdd("ir_version", f.Varint.ToString(CultureInfo.InvariantCulture));
                }
                else if (f.Number is 2 or 3 && f.WireType == 2)
                {
                    m.TryAdd(f.Number == 2 ? "producer_name" : "producer_version", Text(f, null, "producer"));
                }
            }
            return m;
        }

        /// <summary>Parses a TensorProto; <paramref name="listedName"/> (a Constant's output) replaces the name it carries.</summary>
        private Initializer ParseTensor(ProtobufField field, string? listedName = null)
        {
            var fields = Fields(field.ValueStart, field.End, listedName, $"initializer at offset {field.TagStart}");
            var nameField = fields.LastOrDefault(f => f.Number == 8 && f.WireType == 2);
            if (nameField is null && listedName is null)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.InvalidHeader, path, null, $"initializer at offset {field.TagStart} has no name.");
            }
            var name = listedName ?? Text(nameField!, null, "name");
            if (name.Length == 0)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.InvalidHeader, path, null, $"initializer at offset {field.TagStart} has an empty name.");
            }

            var typeField = fields.LastOrDefault(f => f.Number == 2 && f.WireType == 0);
            var code = typeField?.Varint ?? 0;
            if (!OnnxDataTypes.TryDType(code, out var dtype))
            {
                throw new CheckpointFormatException(CheckpointErrorKind.UnknownDType, path, name, $"data_type {code} is not one Graft reads.");
            }

            var dims = new List<long>();
            foreach (var f in fields.Where(f => f.Number == 1))
            {
                foreach (var d in Varints(f, name))
                {
                    if (d < 0)
                    {
                        throw new CheckpointFormatException(CheckpointErrorKind.InvalidShape, path, name, $"dimension {dims.Count} is {d}; dimensions must be non-negative.");
                    }
                    if (dims.Count == MaxRank)
                    {
                        throw new CheckpointFormatException(CheckpointErrorKind.InvalidShape, path, name, $"more than {MaxRank} dimensions.");
                    }
                    dims.Add(d);
                }
            }
            var info = TensorInfo.Declared(path, name, dtype, Intern(new Shape(dims)));
            return new Initializer(info, field, field, Source(info, fields));
        }

        private Source Source(TensorInfo info, List<ProtobufField> fields)
        {
            var name = info.Name;
            var raw = fields.Where(f => f.Number == 9 && f.WireType == 2).ToList();
            var typedNumbers = new[] { 4, 5, 7, 10, 11 };
            var typed = fields.Where(f => typedNumbers.Contains(f.Number)).ToList();
            var external = fields.LastOrDefault(f => f.Number == 14 && f.WireType == 0)?.Varint == 1;
            var kinds = (raw.Count > 0 ? 1 : 0) + (typed.Count > 0 ? 1 : 0) + (external ? 1 : 0);
            if (kinds > 1)
            {
                throw Corrupt(name, "the tensor has its data in more than one place (raw_data, typed fields, external data).");
            }
            if (fields.Any(f => f.Number == 6))
            {
                throw Corrupt(name, "string_data is set; string tensors are not weights Graft reads.");
            }
            if (external)
            {
                return External(info, fields);
            }
            if (raw.Count > 0)
            {
                var r = raw[^1];
                if (r.ValueLength != info.ByteLength)
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.LengthMismatch, path, name,
                        $"raw_data holds {r.ValueLength} bytes; shape {info.Shape} of {info.DType} needs {info.ByteLength}.");
                }
                return new RawSource(r.ValueStart);
            }
            if (typed.Count == 0)
            {
                if (info.ByteLength != 0)
                {
                    throw new CheckpointFormatException(CheckpointErrorKind.LengthMismatch, path, name,
                        $"the tensor has no data; shape {info.Shape} of {info.DType} needs {info.ByteLength} bytes.");
                }
                return EmptySource.Instance;
            }
            var number = typed[0].Number;
            if (typed.Any(f => f.Number != number) || number != OnnxDataTypes.TypedField(info.DType))
            {
                throw Corrupt(name, $"typed data field {number} cannot hold {info.DType} (expected field {OnnxDataTypes.TypedField(info.DType)}).");
            }
            var segments = new List<Segment>();
            long count = 0;
            foreach (var f in typed)
            {
                var fixedSize = number switch { 4 => 4, 10 => 8, _ => 0 };
                var expectedWire = fixedSize == 4 ? 5 : fixedSize == 8 ? 1 : 0;
                if (f.WireType == 2)
                {
                    if (fixedSize > 0)
                    {
                        if (f.ValueLength % fixedSize != 0)
                        {
                            throw Corrupt(name, $"packed field {number} has {f.ValueLength} bytes, not a multiple of {fixedSize}.");
                        }
                        count += f.ValueLength / fixedSize;
                    }
                    else
                    {
                        count += Varints(f, name).Count;
                    }
                    segments.Add(new Segment(f.ValueStart, f.ValueLength, true));
                }
                else if (f.WireType == expectedWire)
                {
                    count++;
                    segments.Add(new Segment(f.ValueStart, f.ValueLength, false));
                }
                else
                {
                    throw Corrupt(name, $"field {number} has wire type {f.WireType}.");
                }
            }
            if (count != info.ElementCount)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.LengthMismatch, path, name,
                    $"typed field {number} holds {count} elements; shape {info.Shape} needs {info.ElementCount}.");
            }
            return new TypedSource(number, segments);
        }

        private ExternalSource External(TensorInfo info, List<ProtobufField> fields)
        {
            var name = info.Name;
            string? location = null;
            long offset = 0;
            long? declared = null;
            foreach (var f in fields.Where(f => f.Number == 13 && f.WireType == 2))
            {
                var (k, v) = KeyValue(f, name);
                switch (k)
                {
                    case "location":
                        location = v;
                        break;
                    case "offset":
                        offset = Number(v, name, k);
                        break;
                    case "length":
                        declared = Number(v, name, k);
                        break;
                    default:
                        break;
                }
            }
            if (location is null)
            {
                throw Corrupt(name, "data_location is EXTERNAL but external_data has no 'location'.");
            }
            var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
            var real = SafePath.ResolveInside(folder, location, allowSubfolders: true, path, name);
            if (declared is { } d && d != info.ByteLength)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.LengthMismatch, path, name,
                    $"external data length is {d} bytes; shape {info.Shape} of {info.DType} needs {info.ByteLength}.");
            }
            if (!_external.TryGetValue(real, out var handle))
            {
                handle = FileIdentity.OpenInput(real, path);
                _external.Add(real, handle);
            }
            var fileLength = RandomAccess.GetLength(handle);
            if (offset > fileLength || info.ByteLength > fileLength - offset)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.OutOfBounds, path, name,
                    $"external bytes [{offset}, {offset}+{info.ByteLength}) reach past the end of '{location}' ({fileLength} bytes).");
            }
            return new ExternalSource(location, real, offset);
        }

        /// <summary>
        /// One <see cref="Shape"/> object per distinct shape (up to 4,096 of them): a model's biases and norms repeat a
        /// few shapes many times, and a model of 100,000 tensors would otherwise hold 100,000 equal shapes.
        /// </summary>
        private Shape Intern(Shape shape)
        {
            if (_shapes.TryGetValue(shape, out var known))
            {
                return known;
            }
            if (_shapes.Count < 4096)
            {
                _shapes.Add(shape, shape);
            }
            return shape;
        }

        private long Number(string text, string tensor, string key) =>
            long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
                ? v
                : throw Corrupt(tensor, $"external_data '{key}' is '{(text.Length > 40 ? text[..40] + "…" : text)}', not a non-negative integer.");

        private (string Key, string Value) KeyValue(ProtobufField f, string? tensor)
        {
            string key = "", value = "";
            foreach (var e in Fields(f.ValueStart, f.End, tensor, "key/value entry"))
            {
                if (e.Number == 1 && e.WireType == 2)
                {
                    key = Text(e, tensor, "key");
                }
                else if (e.Number == 2 && e.WireType == 2)
                {
                    value = Text(e, tensor, "value");
                }
            }
            return (key, value);
        }

        private string Text(ProtobufField f, string? tensor, string what) => _wire.Text(f, tensor, what);

        private List<long> Varints(ProtobufField f, string tensor) => _wire.Varints(f, tensor);

        private List<ProtobufField> Fields(long start, long end, string? tensor, string what) => _wire.Fields(start, end, tensor, what);

        private CheckpointFormatException Corrupt(string? tensor, string detail) => _wire.Corrupt(tensor, detail);
    }
}
