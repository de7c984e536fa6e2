namespace Graft.Checkpoints;

/// <summary>
/// Checks, before a write starts, that the output's file system can hold it. Every output is staged beside its
/// destination and an existing output is only replaced at the commit, so the whole output must fit next to what is
/// there now.
/// </summary>
internal static class OutputSpace
{
    /// <summary>
    /// Replaces the free-space query on this flow of execution (tests playing a small disk, without touching tests that
    /// run beside them); null restores the file system's answer.
    /// </summary>
    internal static AsyncLocal<Func<string, long?>?> Pretend { get; } = new();

    /// <summary>
    /// Free bytes of the file system holding a folder, or null when it cannot be told (then the write goes ahead, and a
    /// full disk is still caught by the staged write).
    /// </summary>
    internal static long? FreeBytes(string folder) => (Pretend.Value ?? Query)(folder);

    /// <summary>Throws <see cref="OutputSpaceException"/> when <paramref name="bytes"/> do not fit beside <paramref name="outputPath"/>.</summary>
    /// <param name="outputPath">The output (its folder's file system is asked).</param>
    /// <param name="bytes">Tensor bytes the output will hold (headers are small beside them and not counted).</param>
    /// <param name="why">Appended to the size in the message (e.g. how tensors sharing a storage inflate it); may be empty.</param>
    public static void Ensure(string outputPath, long bytes, string why = "")
    {
        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(outputPath));
        if (folder is null || FreeBytes(folder) is not { } free || bytes <= free)
        {
            return;
        }
        throw new OutputSpaceException(outputPath, bytes, free, why);
    }

    private static long? Query(string folder)
    {
        try
        {
            // On Unix DriveInfo takes any path and asks statvfs for its file system: f_bavail, what a writer may use.
            return new DriveInfo(folder).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }
}
