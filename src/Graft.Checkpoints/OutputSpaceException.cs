namespace Graft.Checkpoints;

/// <summary>
/// An output would need more bytes than its file system has free, found before anything was written. A checkpoint can
/// declare far more than it stores (a <c>.pt</c> whose tensors view one shared storage: a 1 MiB file can declare
/// 10 GiB, all written in full by a conversion), so a write that would only fail half-way, after filling the disk that
/// other programs share, is refused up front.
/// </summary>
public sealed class OutputSpaceException : IOException
{
    /// <summary>Creates the error; <paramref name="why"/> (may be empty) says why the output is that large.</summary>
    public OutputSpaceException(string path, long needed, long available, string why)
        : base($"{path}: the output needs {ByteSize.Format(needed)}{why}, but its file system has only {ByteSize.Format(available)} of free space; nothing was written.")
    {
        Path = path;
        Needed = needed;
        Available = available;
    }

    /// <summary>The output that would not fit.</summary>
    public string Path { get; }

    /// <summary>Bytes of tensor data the output would hold.</summary>
    public long Needed { get; }

    /// <summary>Bytes free for an unprivileged writer on the output's file system when the write was planned.</summary>
    public long Available { get; }
}
