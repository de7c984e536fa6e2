using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Win32.SafeHandles;

namespace Graft.Checkpoints;

/// <summary>
/// File names that are not UTF-8 (Linux). .NET decodes the command line and every file name as UTF-8 and turns the bytes
/// that are not into U+FFFD, so such a name cannot be opened or written through a <see cref="string"/>. This recovers
/// the bytes the user typed from <c>/proc/self/cmdline</c> and turns each such argument into a string path that the
/// rest of Graft handles like any other:
/// <list type="bullet">
/// <item>the deepest folder whose name is not UTF-8 is opened once from its bytes (<c>O_PATH</c>, kept for the life of
/// the process) and the argument becomes <c>/proc/self/fd/N/rest</c>: the kernel resolves that to the folder itself, so
/// opening, creating, renaming and identity checks (device and inode) work unchanged;</item>
/// <item>when the file's own name is not UTF-8, the argument becomes <c>/proc/self/fd/N/ESCAPED</c>, where N is its
/// folder and ESCAPED the name with each byte that is not UTF-8 written <c>\xHH</c>: a name the few places that touch
/// a file by name (<see cref="FileIdentity"/>, <see cref="AtomicFile"/>, <see cref="OutputSet"/>) look up here and
/// reach from the bytes (<c>statx</c>, <c>openat</c>, <c>renameat</c> on the folder).</item>
/// </list>
/// <see cref="Display"/> turns such paths back into the user's name, each byte that is not UTF-8 shown as <c>\xHH</c>
/// (never raw). Elsewhere than Linux nothing is recovered, and names holding U+FFFD keep being refused.
/// </summary>
public static partial class RawPath
{
    private const string ProcFd = "/proc/self/fd/";

    /// <summary>Folders opened from their bytes: descriptor → (handle kept open, the folder as the user named it, escaped).</summary>
    private static readonly ConcurrentDictionary<int, (SafeFileHandle Handle, string Display)> Anchors = new();

    /// <summary>The same folder bytes always get the same descriptor, so that two arguments naming it agree as strings.</summary>
    private static readonly ConcurrentDictionary<string, int> AnchorOfBytes = new(StringComparer.Ordinal);

    /// <summary>Stand-in paths of names that are not UTF-8 → (folder handle, the name's bytes).</summary>
    private static readonly ConcurrentDictionary<string, (SafeFileHandle Folder, byte[] Name)> Names = new(StringComparer.Ordinal);

    [GeneratedRegex(@"/proc/self/fd/(\d{1,9})(?!\d)", RegexOptions.CultureInvariant)]
    private static partial Regex AnchorPattern();

    /// <summary>True once an argument was recovered: only then can a path need <see cref="Display"/>.</summary>
    public static bool Active => !Anchors.IsEmpty;

    /// <summary>
    /// The arguments with each one that names a path whose bytes are not UTF-8 replaced by a path Graft can use (see the
    /// type's remarks); every other argument as given. Also an option's value written <c>--name=VALUE</c>. When the
    /// command line cannot be read or does not line up with <paramref name="args"/> (each recovered argument, decoded
    /// with U+FFFD for bytes that are not UTF-8, must equal the one .NET gave, counting a run of U+FFFD as one), or a
    /// folder on the path cannot be opened, the argument is left as it was (and a name holding U+FFFD is refused later
    /// with its own message).
    /// </summary>
    public static string[] FromCommandLine(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (!OperatingSystem.IsLinux() || !args.Any(a => a.Contains('\uFFFD', StringComparison.Ordinal)))
        {
            return args;
        }
        byte[] cmdline;
        try
        {
            cmdline = File.ReadAllBytes("/proc/self/cmdline");
        }
        catch (IOException)
        {
            return args;
        }
        catch (UnauthorizedAccessException)
        {
            return args;
        }
        var parts = new List<byte[]>();
        for (int start = 0, i = 0; i < cmdline.Length; i++)
        {
            if (cmdline[i] == 0)
            {
                parts.Add(cmdline[start..i]);
                start = i + 1;
            }
        }
        if (parts.Count < args.Length)
        {
            return args;
        }
        var raw = parts.Skip(parts.Count - args.Length).ToArray();
        for (var i = 0; i < args.Length; i++)
        {
            if (Collapse(Decode(raw[i])) != Collapse(args[i]))
            {
                return args;
            }
        }
        var result = (string[])args.Clone();
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].Contains('\uFFFD', StringComparison.Ordinal) || IsUtf8(raw[i]))
            {
                continue;
            }
            var bytes = raw[i];
            var prefix = "";
            if (bytes.Length > 0 && bytes[0] == (byte)'-')
            {
                // An option: only its value, after the first '=', can be a path.
                var eq = Array.IndexOf(bytes, (byte)'=');
                if (eq < 0 || !IsUtf8(bytes.AsSpan(0, eq + 1)))
                {
                    continue;
                }
                prefix = Encoding.UTF8.GetString(bytes, 0, eq + 1);
                bytes = bytes[(eq + 1)..];
            }
            if (Translate(bytes) is { } path)
            {
                result[i] = prefix + path;
            }
        }
        return result;
    }

    /// <summary>
    /// <paramref name="text"/> with every path made by <see cref="FromCommandLine"/> written as the user named it (bytes
    /// that are not UTF-8 as <c>\xHH</c>): for messages, tables and JSON, which must never show <c>/proc/self/fd/N</c>.
    /// </summary>
    public static string Display(string text)
    {
        if (Anchors.IsEmpty || string.IsNullOrEmpty(text) || !text.Contains(ProcFd, StringComparison.Ordinal))
        {
            return text;
        }
        return AnchorPattern().Replace(text, m =>
            int.TryParse(m.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var fd) && Anchors.TryGetValue(fd, out var a)
                ? a.Display : m.Value);
    }

    /// <summary>Bytes as text: UTF-8 sequences as they are, every other byte as <c>\xHH</c>.</summary>
    public static string Escape(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length + 8);
        while (!bytes.IsEmpty)
        {
            var status = System.Text.Rune.DecodeFromUtf8(bytes, out var rune, out var used);
            if (status == System.Buffers.OperationStatus.Done)
            {
                sb.Append(rune.ToString());
            }
            else
            {
                for (var k = 0; k < used; k++)
                {
                    sb.Append("\\x").Append(bytes[k].ToString("x2", CultureInfo.InvariantCulture));
                }
            }
            bytes = bytes[used..];
        }
        return sb.ToString();
    }

    /// <summary>
    /// True when <paramref name="path"/> is the stand-in of a file whose own name is not UTF-8; then
    /// <paramref name="folder"/> is its folder, opened, and <paramref name="name"/> the name's bytes.
    /// </summary>
    internal static bool TryGetRaw(string path, out SafeFileHandle folder, out byte[] name)
    {
        if (!Names.IsEmpty && Names.TryGetValue(path, out var entry))
        {
            (folder, name) = entry;
            return true;
        }
        folder = null!;
        name = [];
        return false;
    }

    /// <summary>True when <paramref name="path"/> is a stand-in whose own name is not UTF-8 (see <see cref="TryGetRaw"/>).</summary>
    internal static bool IsRawName(string path) => !Names.IsEmpty && Names.ContainsKey(path);

    /// <summary>
    /// The folder <c>/proc/self/fd/N</c> that <paramref name="fullPath"/> starts in, when it was made by
    /// <see cref="FromCommandLine"/>; else null. Such a folder is resolved already: link resolution starts below it.
    /// </summary>
    internal static string? AnchorOf(string fullPath)
    {
        if (Anchors.IsEmpty || !fullPath.StartsWith(ProcFd, StringComparison.Ordinal))
        {
            return null;
        }
        var end = ProcFd.Length;
        while (end < fullPath.Length && char.IsAsciiDigit(fullPath[end]))
        {
            end++;
        }
        if (end == ProcFd.Length || (end < fullPath.Length && fullPath[end] != '/')
            || !int.TryParse(fullPath.AsSpan(ProcFd.Length, end - ProcFd.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var fd)
            || !Anchors.ContainsKey(fd))
        {
            return null;
        }
        return fullPath[..end];
    }

    /// <summary>Renames <paramref name="temporary"/> (a file in the same folder) over the stand-in's real name.</summary>
    /// <exception cref="IOException">The rename failed; the message names the destination as the user does.</exception>
    internal static unsafe void RenameOver(string temporary, SafeFileHandle folder, byte[] name, string display)
    {
        var from = NulTerminated(Encoding.UTF8.GetBytes(Path.GetFileName(temporary)));
        var to = NulTerminated(name);
        bool added = false;
        try
        {
            folder.DangerousAddRef(ref added);
            var fd = (int)folder.DangerousGetHandle();
            fixed (byte* f = from, t = to)
            {
                if (Native.RenameAt(fd, f, fd, t) != 0)
                {
                    throw new IOException($"{display}: cannot be written ({Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}).");
                }
            }
        }
        finally
        {
            if (added)
            {
                folder.DangerousRelease();
            }
        }
    }

    /// <summary>Opens the stand-in's file for reading (flags as <see cref="FileIdentity.OpenInput"/> uses); a negative value on failure.</summary>
    internal static unsafe int OpenAt(SafeFileHandle folder, byte[] name, int flags)
    {
        var n = NulTerminated(name);
        bool added = false;
        try
        {
            folder.DangerousAddRef(ref added);
            fixed (byte* p = n)
            {
                return Native.OpenAt((int)folder.DangerousGetHandle(), p, flags);
            }
        }
        finally
        {
            if (added)
            {
                folder.DangerousRelease();
            }
        }
    }

    /// <summary>The path Graft uses for the bytes <paramref name="raw"/> (see the type's remarks); null when it cannot make one.</summary>
    private static string? Translate(byte[] raw)
    {
        // Components, without the separators; a trailing '/' changes nothing here.
        var end = raw.Length;
        while (end > 1 && raw[end - 1] == (byte)'/')
        {
            end--;
        }
        var lastBad = -1;
        for (int start = 0, i = 0; i <= end; i++)
        {
            if (i == end || raw[i] == (byte)'/')
            {
                if (!IsUtf8(raw.AsSpan(start, i - start)))
                {
                    lastBad = i;
                }
                start = i + 1;
            }
        }
        if (lastBad < 0)
        {
            return null;
        }
        if (lastBad < end)
        {
            // A folder on the way is not UTF-8; the rest is.
            var fd = Anchor(raw[..lastBad]);
            return fd is null ? null : ProcFd + fd.Value.ToString(CultureInfo.InvariantCulture) + Encoding.UTF8.GetString(raw, lastBad, raw.Length - lastBad);
        }
        // The last name is not UTF-8: a folder of that name is opened itself; a file is reached through its folder.
        if (Anchor(raw[..end]) is { } self)
        {
            return ProcFd + self.ToString(CultureInfo.InvariantCulture);
        }
        var slash = Array.LastIndexOf(raw, (byte)'/', end - 1);
        var folderBytes = slash < 0 ? "."u8.ToArray() : slash == 0 ? "/"u8.ToArray() : raw[..slash];
        var name = raw[(slash + 1)..end];
        if (Anchor(folderBytes) is not { } dir)
        {
            return null;
        }
        var stand = ProcFd + dir.ToString(CultureInfo.InvariantCulture) + "/" + Escape(name);
        Names.TryAdd(stand, (Anchors[dir].Handle, name));
        return stand;
    }

    /// <summary>Opens the folder named by <paramref name="raw"/> (<c>O_PATH</c>) once and keeps it; null when it is no folder.</summary>
    private static unsafe int? Anchor(byte[] raw)
    {
        var key = Convert.ToHexString(raw);
        if (AnchorOfBytes.TryGetValue(key, out var known))
        {
            return known;
        }
        var z = NulTerminated(raw);
        int fd;
        fixed (byte* p = z)
        {
            fd = Native.Open(p, OPath | OCloexec);
        }
        if (fd < 0)
        {
            return null;
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        // (O_DIRECTORY's value differs between architectures: the kind is asked instead.)
        if (FileIdentity.Of(handle) is not { Kind: FileKind.Directory } || IsSystemFolder(fd))
        {
            // /proc, /sys and /dev are refused as output folders by their resolved path, which a descriptor hides.
            handle.Dispose();
            return null;
        }
        var display = Escape(raw);
        Anchors[fd] = (handle, display);
        AnchorOfBytes[key] = fd;
        return fd;
    }

    /// <summary>True when the opened folder lies in /proc or /sys or is /dev (read from the kernel's name for it).</summary>
    private static bool IsSystemFolder(int fd)
    {
        try
        {
            var target = new FileInfo(ProcFd + fd.ToString(CultureInfo.InvariantCulture)).LinkTarget ?? "";
            return target.StartsWith("/proc/", StringComparison.Ordinal) || target.StartsWith("/sys/", StringComparison.Ordinal)
                || target is "/proc" or "/sys" or "/dev";
        }
        catch (IOException)
        {
            return true;
        }
    }

    private static byte[] NulTerminated(ReadOnlySpan<byte> bytes)
    {
        var z = new byte[bytes.Length + 1];
        bytes.CopyTo(z);
        return z;
    }

    private static bool IsUtf8(ReadOnlySpan<byte> bytes) => System.Text.Unicode.Utf8.IsValid(bytes);

    private static string Decode(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    /// <summary>Each run of U+FFFD as one: .NET's host and <see cref="Encoding.UTF8"/> split bad sequences differently.</summary>
    private static string Collapse(string s)
    {
        if (!s.Contains('\uFFFD', StringComparison.Ordinal))
        {
            return s;
        }
        var sb = new StringBuilder(s.Length);
        foreach (var c in s)
        {
            if (c != '\uFFFD' || sb.Length == 0 || sb[^1] != '\uFFFD')
            {
                sb.Append(c);
            }
        }
        return sb.ToString();
    }

    private const int OPath = 0x200000;
    private const int OCloexec = 0x80000;

    /// <summary>libc calls on byte paths (Linux).</summary>
    private static unsafe partial class Native
    {
        // open(2) and openat(2) are variadic; only the fixed arguments are passed (no O_CREAT, so no mode).
        [LibraryImport("libc", EntryPoint = "open", SetLastError = true)]
        public static partial int Open(byte* path, int flags);

        [LibraryImport("libc", EntryPoint = "openat", SetLastError = true)]
        public static partial int OpenAt(int dirfd, byte* path, int flags);

        [LibraryImport("libc", EntryPoint = "renameat", SetLastError = true)]
        public static partial int RenameAt(int olddirfd, byte* oldpath, int newdirfd, byte* newpath);
    }
}
