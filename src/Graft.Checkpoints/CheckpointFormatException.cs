namespace Graft.Checkpoints;

/// <summary>What is wrong with a checkpoint file. One value per rule a reader enforces, so tests can name each.</summary>
public enum CheckpointErrorKind
{
    /// <summary>The file is shorter than the format's fixed prefix.</summary>
    TooShort,
    /// <summary>The declared header length exceeds the file or the format's cap.</summary>
    HeaderTooLarge,
    /// <summary>The header is not valid UTF-8.</summary>
    HeaderNotUtf8,
    /// <summary>The header is not well-formed JSON (or is truncated, or nested too deeply).</summary>
    HeaderNotJson,
    /// <summary>The header is JSON but not of the expected structure (wrong types, missing fields).</summary>
    InvalidHeader,
    /// <summary>Metadata contains a non-string value.</summary>
    InvalidMetadata,
    /// <summary>Two tensors share one name.</summary>
    DuplicateName,
    /// <summary>A dtype the format or Graft does not know.</summary>
    UnknownDType,
    /// <summary>A dimension is negative, fractional or too large.</summary>
    InvalidShape,
    /// <summary>Shape × element size overflows 64 bits.</summary>
    SizeOverflow,
    /// <summary>Byte offsets are not a pair of non-negative integers with begin ≤ end.</summary>
    InvalidOffsets,
    /// <summary>The byte range does not match shape × element size.</summary>
    LengthMismatch,
    /// <summary>Two tensors' byte ranges overlap.</summary>
    OverlappingData,
    /// <summary>The data buffer has a hole, or bytes after the last tensor.</summary>
    GapInData,
    /// <summary>A byte range reaches past the end of the file.</summary>
    OutOfBounds,
    /// <summary>A file or entry path is absolute, climbs with <c>..</c>, or leaves the checkpoint's folder.</summary>
    UnsafePath,
    /// <summary>A pickle refers to a global outside the allowlist.</summary>
    ForbiddenGlobal,
    /// <summary>A pickle uses an opcode the restricted unpickler does not accept, or with operands of the wrong type.</summary>
    ForbiddenOpcode,
    /// <summary>The container is malformed (bad zip, bad varint, bad protobuf, truncated record…).</summary>
    Corrupt,
    /// <summary>The file is of a kind Graft recognises but does not support (for example a TorchScript archive).</summary>
    Unsupported,
    /// <summary>An index and the files it names disagree.</summary>
    Inconsistent,
    /// <summary>The checkpoint, a shard or an external data file is not a regular file (a FIFO, a device, a socket).</summary>
    NotRegularFile,
}

/// <summary>
/// A checkpoint file is malformed or hostile. The message always names the file, and the tensor when one is involved.
/// </summary>
public sealed class CheckpointFormatException : Exception
{
    /// <summary>Creates the exception; the message is prefixed with the file (and tensor) it concerns.</summary>
    public CheckpointFormatException(CheckpointErrorKind kind, string filePath, string? tensorName, string detail, Exception? inner = null)
        : base(Compose(filePath, tensorName, detail), inner)
    {
        Kind = kind;
        FilePath = filePath;
        TensorName = tensorName;
        Detail = detail;
    }

    /// <summary>Which rule was broken.</summary>
    public CheckpointErrorKind Kind { get; }

    /// <summary>The file the problem is in.</summary>
    public string FilePath { get; }

    /// <summary>The tensor concerned, if any.</summary>
    public string? TensorName { get; }

    /// <summary>The description without the file and tensor prefix.</summary>
    public string Detail { get; }

    private static string Compose(string filePath, string? tensorName, string detail) =>
        tensorName is null ? $"{filePath}: {detail}" : $"{filePath}: tensor '{tensorName}': {detail}";
}
