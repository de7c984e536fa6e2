namespace Graft.Checkpoints.Onnx;

/// <summary>
/// ONNX models (<c>.onnx</c>): their initializers read as a checkpoint through <see cref="OnnxReader"/>. Writing needs
/// a source model to carry the graph, which <see cref="ICheckpointFormat.Write"/> has no place for, so this entry reads
/// only; <see cref="OnnxWriter.ReplaceInitializers"/> writes.
/// </summary>
public sealed class OnnxFormat : ICheckpointFormat
{
    internal const string FormatName = "onnx";

    private OnnxFormat()
    {
    }

    /// <summary>The one instance.</summary>
    public static OnnxFormat Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => FormatName;

    /// <inheritdoc/>
    public string DisplayName => "ONNX";

    /// <inheritdoc/>
    public IReadOnlyList<string> Extensions { get; } = [".onnx"];

    /// <summary>False: an ONNX file is a graph with weights, and weights alone do not make one.</summary>
    public bool CanWrite => false;

    /// <summary>
    /// Always false: a protobuf message has no magic, and its usual first byte (field 1, a varint) is too common to
    /// claim a file by.
    /// </summary>
    public bool Sniff(ReadOnlySpan<byte> head) => false;

    /// <inheritdoc/>
    public ICheckpointReader Open(string path) => OnnxReader.Open(path);

    /// <summary>Not supported: use <see cref="OnnxWriter.ReplaceInitializers"/>, which copies the graph from a source model.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public void Write(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        throw new NotSupportedException(
            "An ONNX file needs a graph as well as weights; use OnnxWriter.ReplaceInitializers(modelPath, outputPath, payloads) to write new weights into an existing model.");

    /// <summary>The model and both names its external data file takes in turn (<see cref="OnnxWriter.FilesReplacedBy"/>).</summary>
    public IReadOnlyList<string> FilesReplacedBy(string outputPath) => OnnxWriter.FilesReplacedBy(outputPath);

    /// <summary>True: a model is written into a template model, whose graph it keeps (<see cref="OnnxWriter.ReplaceInitializers"/>).</summary>
    public bool WritesFromTemplate => true;

    /// <summary>The template's graph with its initializers replaced by <paramref name="tensors"/> (<see cref="OnnxWriter.ReplaceInitializers"/>).</summary>
    public void WriteFromTemplate(string templatePath, string path, IEnumerable<TensorPayload> tensors) =>
        OnnxWriter.ReplaceInitializers(templatePath, path, tensors);
}
