using Graft.Checkpoints.Safetensors;

namespace Graft.Checkpoints;

/// <summary>Opens and writes checkpoints of any registered format, chosen by name, extension or content.</summary>
public static partial class CheckpointFile
{
    /// <summary>Every format Graft knows, in the order content sniffing tries them.</summary>
    public static IReadOnlyList<ICheckpointFormat> Formats { get; } =
    [
        SafetensorsFormat.Instance,
        Sharded.ShardedSafetensorsFormat.Instance,
        new PyTorch.PyTorchFormat(),
        TorchSharpFormat.TorchSharpCheckpointFormat.Instance,
        Onnx.OnnxFormat.Instance,
    ];

    /// <summary>Looks a format up by its <see cref="ICheckpointFormat.Name"/> (case-insensitive).</summary>
    /// <exception cref="InvalidInputException">No format has that name; the message lists the known ones.</exception>
    public static ICheckpointFormat GetFormat(string name) =>
        Formats.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new InvalidInputException($"Unknown checkpoint format '{name}'. Known formats: {string.Join(", ", Formats.Select(f => f.Name))}.");

    /// <summary>The format a path's extension names, or null when no format claims it.</summary>
    public static ICheckpointFormat? FormatFromExtension(string path)
    {
        var lower = path.ToLowerInvariant();
        return Formats.FirstOrDefault(f => f.Extensions.Any(e => lower.EndsWith(e, StringComparison.Ordinal)));
    }

    /// <summary>
    /// The format to write <paramref name="path"/> in: <paramref name="format"/> when given, else the one its extension
    /// names. The one rule <c>transfer</c>, <c>convert</c> and the library's writers share: an extension no format claims
    /// is refused, never written in some other format under a misleading name (a PyTorch file called <c>.h5</c>).
    /// </summary>
    /// <param name="path">The output path.</param>
    /// <param name="format">The format the caller named, or null.</param>
    /// <param name="writersOnly">
    /// False for a transfer, which also writes ONNX (the ONNX template's graph with its initializers replaced); true for
    /// everything else, where only formats with a writer of their own qualify.
    /// </param>
    /// <exception cref="InvalidInputException">No format is named and the extension claims none, or the format is unknown or read-only.</exception>
    public static ICheckpointFormat OutputFormat(string path, string? format, bool writersOnly = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var f = format is not null ? GetFormat(format)
            : FormatFromExtension(path) ?? throw new InvalidInputException(
                $"{path}: no format Graft writes uses the extension '{ExtensionOf(path)}'; use one of {string.Join(" ", Formats.Where(x => x.CanWrite).SelectMany(x => x.Extensions).Distinct())} or name the format with --format ({WritableFormatNames()}).");
        if (writersOnly && !f.CanWrite)
        {
            throw new InvalidInputException($"Graft cannot write the {f.Name} format; write one of {WritableFormatNames()}.");
        }
        return f;
    }

    private static string ExtensionOf(string path)
    {
        var name = System.IO.Path.GetFileName(path);
        int dot = name.IndexOf('.', 1 < name.Length ? 1 : 0);
        return dot < 0 ? "(none)" : name[dot..];
    }

    /// <summary>
    /// Finds the format of an existing file: by its first bytes when a format recognises them (content beats a name:
    /// <c>.bin</c> is used for both PyTorch and safetensors files), otherwise by extension.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="CheckpointFormatException">Neither content nor extension names a format.</exception>
    public static ICheckpointFormat DetectFormat(string path)
    {
        if (!Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such file.", path);
        }
        if (Exists(path))
        {
            Span<byte> head = stackalloc byte[64];
            int n;
            using (var fs = new FileStream(FileIdentity.OpenInput(path), FileAccess.Read))
            {
                n = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            }
            foreach (var f in Formats)
            {
                if (f.Sniff(head[..n]))
                {
                    return f;
                }
            }
        }
        return FormatFromExtension(path)
            ?? throw new CheckpointFormatException(CheckpointErrorKind.Unsupported, path, null,
                $"not a checkpoint Graft recognises (known formats: {string.Join(", ", Formats.Select(f => f.Name))}).");
    }

    /// <summary>Opens a checkpoint; <paramref name="format"/> overrides detection.</summary>
    /// <remarks>
    /// The format is sniffed on one open and parsed on another: when the file at <paramref name="path"/> was replaced in
    /// between (a training loop saving over it), the reader may have parsed another file than the one sniffed. So the
    /// file's identity (device and inode) is taken before sniffing and compared after opening; on a difference the
    /// detection and open are repeated (up to three times), and a parse error raised meanwhile is not reported as a
    /// malformed checkpoint.
    /// </remarks>
    public static ICheckpointReader Open(string path, string? format = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        for (var attempt = 0; ; attempt++)
        {
            var before = FileIdentity.Of(path);
            var f = format is null ? DetectFormat(path) : GetFormat(format);
            if (!Exists(path) && !Directory.Exists(path))
            {
                throw new FileNotFoundException($"{path}: no such file.", path);
            }
            ICheckpointReader reader;
            try
            {
                reader = f.Open(path);
            }
            catch (CheckpointFormatException) when (attempt < 2 && Replaced(path, before))
            {
                continue;
            }
            if (attempt < 2 && Replaced(path, before))
            {
                reader.Dispose();
                continue;
            }
            return reader;
        }
    }

    /// <summary><see cref="File.Exists"/>, which also knows a name that is not UTF-8 (<see cref="RawPath"/>).</summary>
    private static bool Exists(string path) => RawPath.IsRawName(path)
        ? FileIdentity.Of(path) is { Kind: not FileKind.Directory }
        : File.Exists(path);

    /// <summary>True when <paramref name="path"/> no longer names the file it named when <paramref name="before"/> was taken.</summary>
    private static bool Replaced(string path, FileIdentity? before) =>
        before is { Kind: FileKind.Regular } b && (FileIdentity.Of(path) is not { } now || !now.SameFileAs(b));

    /// <summary>
    /// Refuses an output that would replace or delete a file one of the <paramref name="inputs"/> reads: the same file
    /// under any name (a link to it, a path through a linked folder, a hard link), or, for a sharded output, a shard the
    /// write would replace or clean up; and an output that is no regular file (<see cref="AtomicFile.EnsureReplaceable"/>).
    /// The one check every command and library entry point makes before writing, so that Graft never modifies its inputs.
    /// </summary>
    /// <remarks>
    /// Files are compared by identity (device and inode, every link along both paths resolved) where the platform gives
    /// one (Linux, macOS), else by their resolved full paths.
    /// </remarks>
    /// <param name="outputPath">Where the output goes.</param>
    /// <param name="outputFormat">The format it is written in.</param>
    /// <param name="inputs">Each open input and its role for the message (<c>input</c>, <c>source</c>, <c>template</c>).</param>
    /// <exception cref="InvalidInputException">The output would touch an input's file, or is not a regular file; the message names both.</exception>
    public static void EnsureOutputSparesInputs(string outputPath, ICheckpointFormat outputFormat, params (ICheckpointReader Reader, string Role)[] inputs)
    {
        ArgumentException.ThrowIfNullOrEmpty(outputPath);
        ArgumentNullException.ThrowIfNull(outputFormat);
        ArgumentNullException.ThrowIfNull(inputs);
        AtomicFile.EnsureReplaceable(outputPath);
        var output = Path.GetFullPath(outputPath);
        var touched = FilesReplacedBy(outputPath, outputFormat);
        foreach (var (reader, role) in inputs)
        {
            foreach (var file in FilesOf(reader))
            {
                if (IsSameFile(file, output))
                {
                    throw new InvalidInputException($"{outputPath}: the output is the {role} ({reader.Path}), under another name or through a link; Graft writes new files and never modifies its inputs.");
                }
                if (touched.FirstOrDefault(t => IsSameFile(t, file)) is { } hit)
                {
                    throw new InvalidInputException($"{outputPath}: writing it would replace or delete {hit}, which the {role} {reader.Path} reads; Graft never modifies its inputs, so choose another output.");
                }
            }
        }
        if (OutputSet.Current is { } set)
        {
            // A command's output set: the inputs and every file this output may touch join it, so that its other outputs
            // (a report, a picture) are checked against them too.
            foreach (var (reader, role) in inputs)
            {
                set.AddInput(reader, role);
            }
            foreach (var file in touched)
            {
                set.AddOutput(file, "output");
            }
        }
    }

    /// <summary>
    /// Every file writing <paramref name="outputPath"/> in <paramref name="outputFormat"/> may replace or delete: the
    /// output; for a sharded output the shards its previous generation owns (<see cref="Sharded.ShardedSafetensorsWriter.FilesReplacedBy"/>);
    /// for ONNX both names its external data file may take (<see cref="Onnx.OnnxWriter.FilesReplacedBy"/>).
    /// </summary>
    public static IReadOnlyList<string> FilesReplacedBy(string outputPath, ICheckpointFormat outputFormat)
    {
        ArgumentNullException.ThrowIfNull(outputFormat);
        return outputFormat.FilesReplacedBy(outputPath);
    }

    /// <summary>
    /// True when both paths name one existing file: the same device and inode after every link along either path is
    /// resolved (so a hard link, a symbolic link or a path through a linked folder counts), or, where the platform gives no
    /// identities, the same resolved full path.
    /// </summary>
    public static bool IsSameFile(string a, string b)
    {
        ArgumentException.ThrowIfNullOrEmpty(a);
        ArgumentException.ThrowIfNullOrEmpty(b);
        if (FileIdentity.Supported)
        {
            return FileIdentity.Of(a) is { } x && FileIdentity.Of(b) is { } y && x.SameFileAs(y);
        }
        var comparer = OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;
        return comparer.Equals(SafePath.RealPathOrSelf(a), SafePath.RealPathOrSelf(b));
    }

    /// <summary>Every file an open checkpoint reads: the checkpoint, its shards, its external data files.</summary>
    internal static IEnumerable<string> FilesOf(ICheckpointReader reader) => reader switch
    {
        Sharded.ShardedSafetensorsReader sharded => sharded.ShardPaths.Prepend(reader.Path),
        Onnx.OnnxReader onnx => onnx.ExternalDataPaths.Prepend(reader.Path),
        _ => [reader.Path],
    };

    /// <summary>
    /// Writes a checkpoint atomically in the format <paramref name="format"/> names, or else the one the extension names.
    /// <paramref name="maxShardBytes"/> sets the most tensor bytes per shard of a sharded output (default
    /// <see cref="Sharded.ShardedSafetensorsFormat.DefaultMaxShardBytes"/>).
    /// </summary>
    /// <exception cref="InvalidInputException">No format is given and the extension names none, or a shard size is given for
    /// an output that is not sharded.</exception>
    public static void Write(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null, string? format = null,
        long? maxShardBytes = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        AtomicFile.EnsureReplaceable(path);
        // A format that cannot write says why and what to use instead (ONNX points to OnnxWriter.ReplaceInitializers).
        _ = OutputFormat(path, format).WriteFiles(path, tensors, metadata, maxShardBytes);
    }
}
