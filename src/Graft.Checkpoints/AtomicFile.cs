namespace Graft.Checkpoints;

/// <summary>
/// Writes a file so that readers see either the previous file or the complete new one, never a partial one:
/// a temporary file in the same folder, flushed to disk, then renamed over the destination.
/// </summary>
public static class AtomicFile
{
    /// <summary>
    /// Calls <paramref name="write"/> with a stream on a temporary file beside <paramref name="path"/>, then moves it
    /// into place. If <paramref name="write"/> throws, the temporary file is deleted and <paramref name="path"/> is untouched.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        if (OutputSet.Current is { } set)
        {
            // Part of a command's output set: staged now, renamed into place with the set's other files.
            set.Write(path, write);
            return;
        }
        var full = System.IO.Path.GetFullPath(path);
        EnsureReplaceable(full);
        var tmp = WriteTemporary(full, write);
        try
        {
            MoveIntoPlace(tmp, full);
            Forget(tmp);
        }
        catch
        {
            DeleteTemporary(tmp);
            throw;
        }
    }

    /// <summary>Temporary files this process has made and not yet renamed or deleted (for signal handlers).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> Live = new(StringComparer.Ordinal);

    private static volatile bool _terminating;

    /// <summary>
    /// Writes a temporary file beside <paramref name="full"/> (flushed to disk) and returns its path; on failure deletes
    /// it and rethrows. Stale temporaries of dead processes in that folder are swept first.
    /// </summary>
    internal static string WriteTemporary(string full, Action<Stream> write)
    {
        var dir = System.IO.Path.GetDirectoryName(full) ?? ".";
        OutputSet.SweepStaleTemporaries(dir);
        var tmp = System.IO.Path.Combine(dir, TemporaryName(System.IO.Path.GetFileName(full)));
        Live[tmp] = true;
        try
        {
            using (var fs = CreateTemporary(tmp, full, dir))
            {
                if (_terminating)
                {
                    throw new OperationCanceledException("The process is ending.");
                }
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            return tmp;
        }
        catch
        {
            DeleteTemporary(tmp);
            throw;
        }
    }

    /// <summary>
    /// Renames a temporary over its destination in the same folder; a destination whose own name is not UTF-8
    /// (<see cref="RawPath"/>) is reached from its bytes.
    /// </summary>
    internal static void MoveIntoPlace(string tmp, string final)
    {
        if (RawPath.TryGetRaw(final, out var folder, out var name))
        {
            RawPath.RenameOver(tmp, folder, name, final);
            return;
        }
        File.Move(tmp, final, overwrite: true);
    }

    /// <summary>Creates the temporary; a folder the user may not write is named with the destination, not the temporary.</summary>
    private static FileStream CreateTemporary(string tmp, string full, string dir)
    {
        try
        {
            return new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new UnauthorizedAccessException($"{full}: cannot be written: the folder {dir} does not let this user create files in it (permission denied); nothing was written.", ex);
        }
    }

    /// <summary>Deletes a temporary this process made.</summary>
    internal static void DeleteTemporary(string tmp)
    {
        TryDelete(tmp);
        Live.TryRemove(tmp, out _);
    }

    /// <summary>A temporary renamed into place: no longer this process's to delete.</summary>
    internal static void Forget(string tmp) => Live.TryRemove(tmp, out _);

    /// <summary>Deletes every temporary this process made, and any it starts from now on (the process is ending).</summary>
    internal static void RemoveAllTemporaries()
    {
        _terminating = true;
        foreach (var tmp in Live.Keys)
        {
            TryDelete(tmp);
        }
    }

    /// <summary>Longest file name (in UTF-8 bytes) the common file systems accept: NAME_MAX on Linux and macOS.</summary>
    internal const int MaxNameBytes = 255;

    /// <summary>
    /// <c>.NAME.graftPID.RANDOM.tmp</c> (PID: this process, so a later run can tell a stale temporary from a live one),
    /// with NAME shortened (at a character boundary) so that the whole stays within
    /// <see cref="MaxNameBytes"/>: any output name the file system accepts gets a temporary name it accepts too.
    /// </summary>
    internal static string TemporaryName(string fileName)
    {
        var suffix = ".graft" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        var room = MaxNameBytes - 1 - suffix.Length;
        var name = fileName;
        if (System.Text.Encoding.UTF8.GetByteCount(name) > room)
        {
            int cut = 0, bytes = 0;
            foreach (var rune in name.EnumerateRunes())
            {
                if (bytes + rune.Utf8SequenceLength > room)
                {
                    break;
                }
                bytes += rune.Utf8SequenceLength;
                cut += rune.Utf16SequenceLength;
            }
            name = name[..cut];
        }
        return "." + name + suffix;
    }

    /// <summary>
    /// Refuses an output path that must never be renamed over: anything but a regular file or a link to one (a device
    /// node such as <c>/dev/null</c>, a FIFO, a socket, a folder), and paths that resolve into <c>/proc</c>, <c>/sys</c>
    /// or directly into <c>/dev</c>. As root, a rename would otherwise replace <c>/dev/null</c> with a checkpoint.
    /// </summary>
    /// <param name="path">The output path.</param>
    /// <exception cref="InvalidInputException">The path is one of those; the message says what it is.</exception>
    public static void EnsureReplaceable(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = System.IO.Path.GetFullPath(path);
        if (FileIdentity.Of(full, followLastLink: false) is { } own && own.Kind is not (FileKind.Regular or FileKind.SymbolicLink))
        {
            throw new InvalidInputException($"{path}: is {FileIdentity.Describe(own.Kind)}, not a regular file; Graft writes outputs as regular files only, so choose another output.");
        }
        if (FileIdentity.Of(full) is { } target && target.Kind != FileKind.Regular)
        {
            throw new InvalidInputException($"{path}: is a link to {FileIdentity.Describe(target.Kind)}; Graft writes outputs as regular files only, so choose another output.");
        }
        if (OperatingSystem.IsLinux())
        {
            var real = SafePath.RealPathOrSelf(full);
            var folder = System.IO.Path.GetDirectoryName(real);
            // A folder opened from its bytes (RawPath) is reached through /proc/self/fd; it was checked when opened.
            if (RawPath.AnchorOf(real) is null && real.StartsWith("/proc/", StringComparison.Ordinal) || real.StartsWith("/sys/", StringComparison.Ordinal) || folder == "/dev")
            {
                throw new InvalidInputException($"{path}: resolves to {real}, inside a system folder (/proc, /sys or /dev); choose another output.");
            }
        }
    }

    /// <summary>Deletes a file if it can; a file that cannot be deleted is left (callers clean up best-effort).</summary>
    internal static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
