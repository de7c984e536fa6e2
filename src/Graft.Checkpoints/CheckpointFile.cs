using Graft.Checkpoints.Safetensors;

namespace Graft.Checkpoints;

/// <summary>Opens and writes checkpoints of any registered format, chosen by name, extension or content.</summary>
public static class CheckpointFile
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
    /// <exception cref="ArgumentException">No format has that name; the message lists the known ones.</exception>
    public static ICheckpointFormat GetFormat(string name) =>
        Formats.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown checkpoint format '{name}'. Known formats: {string.Join(", ", Formats.Select(f => f.Name))}.", nameof(name));

    /// <summary>The format a path's extension names, or null when no format claims it.</summary>
    public static ICheckpointFormat? FormatFromExtension(string path)
    {
        var lower = path.ToLowerInvariant();
        return Formats.FirstOrDefault(f => f.Extensions.Any(e => lower.EndsWith(e, StringComparison.Ordinal)));
    }

    /// <summary>
    /// Finds the format of an existing file: by its first bytes when a format recognises them (content beats a name:
    /// <c>.bin</c> is used for both PyTorch and safetensors files), otherwise by extension.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="CheckpointFormatException">Neither content nor extension names a format.</exception>
    public static ICheckpointFormat DetectFormat(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such file.", path);
        }
        if (File.Exists(path))
        {
            Span<byte> head = stackalloc byte[64];
            int n;
            using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
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
    public static ICheckpointReader Open(string path, string? format = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var f = format is null ? DetectFormat(path) : GetFormat(format);
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such file.", path);
        }
        return f.Open(path);
    }

    /// <summary>
    /// Writes a checkpoint atomically in the format <paramref name="format"/> names, or else the one the extension names.
    /// </summary>
    /// <exception cref="ArgumentException">No format is given and the extension names none.</exception>
    public static void Write(string path, IEnumerable<TensorPayload> tensors, IReadOnlyDictionary<string, string>? metadata = null, string? format = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var f = format is not null ? GetFormat(format)
            : FormatFromExtension(path) ?? throw new ArgumentException($"{path}: cannot tell the output format from the extension; give one ({string.Join(", ", Formats.Where(x => x.CanWrite).Select(x => x.Name))}).", nameof(path));
        // A format that cannot write says why and what to use instead (ONNX points to OnnxWriter.ReplaceInitializers).
        f.Write(path, tensors, metadata);
    }
}
