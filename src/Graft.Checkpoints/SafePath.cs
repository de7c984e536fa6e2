namespace Graft.Checkpoints;

/// <summary>
/// Resolves a path that a checkpoint names (a shard of a sharded safetensors index, an ONNX external data file) and
/// refuses it unless it stays inside the checkpoint's folder. Path traversal through such names (absolute paths,
/// <c>..</c>, symbolic links pointing elsewhere) was a real bug in popular loaders, so every format shares one routine.
/// </summary>
/// <remarks>
/// Links are followed component by component, with a hop limit so a link loop is refused rather than followed forever.
/// A hard link is the same file under a second name and cannot be told apart from an ordinary file without native
/// calls; it is not detected here.
/// </remarks>
internal static class SafePath
{
    private const int MaxLinkHops = 40;

    /// <summary>
    /// Returns the real (link-free) full path of <paramref name="relative"/> under <paramref name="folder"/>.
    /// </summary>
    /// <param name="folder">The checkpoint's folder.</param>
    /// <param name="relative">The name as the checkpoint stores it.</param>
    /// <param name="allowSubfolders">False when only a plain file name is legal (shards); true for <c>a/b.bin</c> (ONNX).</param>
    /// <param name="file">The checkpoint file that names the path, for the error message.</param>
    /// <param name="tensor">The tensor concerned, for the error message.</param>
    /// <exception cref="CheckpointFormatException"><see cref="CheckpointErrorKind.UnsafePath"/>.</exception>
    public static string ResolveInside(string folder, string relative, bool allowSubfolders, string file, string? tensor)
    {
        if (string.IsNullOrEmpty(relative))
        {
            throw Unsafe(file, tensor, "the file name is empty.");
        }
        if (relative.Contains('\0', StringComparison.Ordinal))
        {
            throw Unsafe(file, tensor, "the file name contains a NUL character.");
        }
        if (relative[0] is '/' or '\\' || Path.IsPathRooted(relative) || (relative.Length >= 2 && relative[1] == ':'))
        {
            throw Unsafe(file, tensor, $"'{relative}' is an absolute path; only names inside the checkpoint's folder are accepted.");
        }
        if (relative.Contains('\\', StringComparison.Ordinal))
        {
            throw Unsafe(file, tensor, $"'{relative}' contains a backslash; names use '/' and stay inside the checkpoint's folder.");
        }
        var parts = relative.Split('/');
        if (!allowSubfolders && parts.Length > 1)
        {
            throw Unsafe(file, tensor, $"'{relative}' contains a directory separator; only a plain file name in the checkpoint's folder is accepted.");
        }
        foreach (var part in parts)
        {
            if (part is ".." or "." or "")
            {
                throw Unsafe(file, tensor, $"'{relative}' has a '{part}' component; only names inside the checkpoint's folder are accepted.");
            }
        }

        var root = RealPath(Path.GetFullPath(folder), file, tensor);
        var real = RealPath(Path.GetFullPath(Path.Combine(root, relative)), file, tensor);
        var prefix = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        if (!real.StartsWith(prefix, StringComparison.Ordinal))
        {
            throw Unsafe(file, tensor, $"'{relative}' resolves through a link to '{real}', outside the checkpoint's folder '{root}'.");
        }
        return real;
    }

    /// <summary>
    /// The full path with every symbolic link along it replaced by its target (for outputs, which are no checkpoint's
    /// business); the path itself when a link loop stops the resolution.
    /// </summary>
    internal static string RealPathOrSelf(string path)
    {
        var full = Path.GetFullPath(path);
        try
        {
            return RealPath(full, full, null);
        }
        catch (CheckpointFormatException)
        {
            return full;
        }
    }

    /// <summary>The path with every symbolic link along it replaced by its target.</summary>
    private static string RealPath(string full, string file, string? tensor)
    {
        var hops = 0;
        var pending = new Stack<string>();
        var root = Path.GetPathRoot(full) ?? "/";
        // A folder opened from its bytes (RawPath, /proc/self/fd/N) is where the walk starts: it is that folder already.
        var start = RawPath.AnchorOf(full) ?? root;
        foreach (var part in full[start.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Reverse())
        {
            pending.Push(part);
        }
        var current = start;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            if (part == ".")
            {
                continue;
            }
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? root;
                continue;
            }
            var next = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            var target = info.LinkTarget;
            if (target is null)
            {
                current = next;
                continue;
            }
            if (++hops > MaxLinkHops)
            {
                throw Unsafe(file, tensor, $"more than {MaxLinkHops} symbolic links while resolving '{full}' (a link loop?).");
            }
            // Resolve the target from scratch: it may be absolute, or relative to the link's folder, and contain links itself.
            var resolved = Path.GetFullPath(target, current);
            var rest = pending.ToArray();
            pending.Clear();
            foreach (var p in rest.Reverse())
            {
                pending.Push(p);
            }
            var rroot = Path.GetPathRoot(resolved) ?? "/";
            foreach (var p in resolved[rroot.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Reverse())
            {
                pending.Push(p);
            }
            current = rroot;
        }
        return current;
    }

    private static CheckpointFormatException Unsafe(string file, string? tensor, string detail) =>
        new(CheckpointErrorKind.UnsafePath, file, tensor, detail);
}
