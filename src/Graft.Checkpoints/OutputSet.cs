using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Graft.Checkpoints;

/// <summary>
/// Every file one command writes or deletes, checked together and committed together. Inputs (each file a checkpoint
/// reads: the checkpoint, its shards, its ONNX external data) and outputs (the output, its shards or data file, a
/// report, a picture, stale shards the write will delete) are declared first; any output that is an input, or another
/// output, under any name (compared by device and inode through every link and linked folder) is refused before a byte
/// is written. Writes are staged as temporary files beside their destinations; <see cref="Commit"/> renames them into
/// place in the order they were written and then runs the deletions; <see cref="Dispose"/> without a commit deletes
/// every temporary, so a failure anywhere (a report folder that does not exist, a full disk) leaves every destination
/// as it was.
/// </summary>
/// <remarks>
/// <para>A set is ambient while it lives (<see cref="Current"/>, flowing like an <see cref="AsyncLocal{T}"/>): the
/// library's writers, which all go through <see cref="AtomicFile.Write"/>, stage into the current set instead of
/// renaming at once. So a command creates one set, declares its extra outputs, calls library entry points (which add
/// their inputs and outputs to it) and commits once at the end; a library call made with no set around makes and
/// commits its own.</para>
/// <para>The commit is a sequence of renames inside each destination's folder: each is atomic, the whole is not. Writers
/// order their files so that a crash between two renames leaves every previous output readable: shards before their
/// index, ONNX external data (under a name the previous model does not use) before the model, reports last.</para>
/// <para>Temporary names carry the writing process's id (<c>.NAME.graftPID.RANDOM.tmp</c>). A process killed outright
/// leaves them behind; the next write into that folder deletes those whose process is gone and that have not been
/// modified for a minute, and says so through <see cref="StaleTemporaryRemoved"/>. <see cref="RemoveTemporaries"/>
/// deletes the temporaries of this process (the CLI calls it on SIGINT and SIGTERM).</para>
/// </remarks>
public sealed class OutputSet : IDisposable
{
    private static readonly AsyncLocal<OutputSet?> Ambient = new();

    private readonly OutputSet? _outer;
    private readonly List<(string Path, string Role)> _inputs = [];
    private readonly List<(string Path, string Role)> _outputs = [];
    private readonly List<(string Temp, string Final)> _staged = [];
    private readonly List<string> _deletions = [];
    private readonly List<FileStream> _locks = [];
    private bool _committed;
    private bool _disposed;

    /// <summary>Starts an empty set and makes it <see cref="Current"/> until it is disposed.</summary>
    public OutputSet()
    {
        _outer = Ambient.Value;
        Ambient.Value = this;
    }

    /// <summary>The set the library's writers stage into on this flow of execution; null when none is open.</summary>
    public static OutputSet? Current => Ambient.Value;

    /// <summary>Told the path of each stale temporary file (of a process that is gone) deleted before a write.</summary>
    public static event Action<string>? StaleTemporaryRemoved;

    /// <summary>
    /// <see cref="Current"/> when there is one (<paramref name="owned"/> false: its creator commits), else a new set that
    /// the caller commits and disposes (<paramref name="owned"/> true).
    /// </summary>
    public static OutputSet CurrentOrNew(out bool owned)
    {
        owned = Current is null;
        return Current ?? new OutputSet();
    }

    /// <summary>The full paths of the outputs declared so far, in order.</summary>
    public IReadOnlyList<string> Outputs => _outputs.Select(o => o.Path).ToList();

    /// <summary>Declares every file an open checkpoint reads (<paramref name="role"/> names it in messages: source, template…).</summary>
    /// <exception cref="InvalidInputException">A declared output is one of those files.</exception>
    public void AddInput(ICheckpointReader reader, string role)
    {
        ArgumentNullException.ThrowIfNull(reader);
        foreach (var file in CheckpointFile.FilesOf(reader))
        {
            AddInputFile(file, $"{role} {reader.Path}");
        }
    }

    /// <summary>Declares one file that an input reads.</summary>
    /// <exception cref="InvalidInputException">A declared output is that file.</exception>
    public void AddInputFile(string path, string role)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ThrowIfDone();
        var full = Path.GetFullPath(path);
        foreach (var (output, _) in _outputs)
        {
            if (CheckpointFile.IsSameFile(output, full))
            {
                throw new InvalidInputException($"{output}: writing it would replace or delete {full}, which the {role} reads; Graft never modifies its inputs, so choose another output.");
            }
        }
        _inputs.Add((full, role));
    }

    /// <summary>
    /// Declares a file this command will write or delete; returns its full path. Declaring the same path again under the
    /// same role does nothing; under another role it is refused (a report that is the output, a picture that is a shard).
    /// </summary>
    /// <param name="path">The destination.</param>
    /// <param name="role">What it is, for messages: <c>output</c>, <c>report</c>, <c>image</c>…</param>
    /// <exception cref="InvalidInputException">It is a folder, not a regular file (<see cref="AtomicFile.EnsureReplaceable"/>),
    /// a file an input reads, or another output.</exception>
    /// <exception cref="DirectoryNotFoundException">Its folder does not exist.</exception>
    public string AddOutput(string path, string role)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentException.ThrowIfNullOrEmpty(role);
        ThrowIfDone();
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            throw new InvalidInputException($"{path}: is a folder; give the {role} a file name.");
        }
        var folder = Path.GetDirectoryName(full);
        if (folder is not null && !Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"{path}: the folder {folder} does not exist, so the {role} cannot be written; nothing was written.");
        }
        if (full.Contains('\uFFFD', StringComparison.Ordinal))
        {
            // .NET decodes file names as UTF-8 and turns bytes that are not UTF-8 into U+FFFD. On Linux the CLI recovers
            // such names from its command line (RawPath); one that reaches here could not be recovered, and writing the
            // replacement character instead would make another file.
            throw new InvalidInputException($"{path}: the name holds U+FFFD, the mark .NET leaves for bytes that are not UTF-8, and Graft could not recover the bytes (only Linux's command line gives them, and the folder must exist); choose a UTF-8 {role} name.");
        }
        var nameBytes = RawPath.TryGetRaw(full, out _, out var raw) ? raw.Length : System.Text.Encoding.UTF8.GetByteCount(Path.GetFileName(full));
        if (nameBytes > AtomicFile.MaxNameBytes)
        {
            throw new InvalidInputException($"{path}: the file name is longer than {AtomicFile.MaxNameBytes} bytes, which file systems refuse; choose a shorter {role} name.");
        }
        AtomicFile.EnsureReplaceable(full);
        foreach (var (input, inputRole) in _inputs)
        {
            if (CheckpointFile.IsSameFile(full, input))
            {
                throw new InvalidInputException($"{path}: the {role} would replace or delete {input}, which the {inputRole} reads (the same file, under another name or through a link); Graft never modifies its inputs, so choose another {role}.");
            }
        }
        var real = SafePath.RealPathOrSelf(full);
        foreach (var (other, otherRole) in _outputs)
        {
            if (other == full || CheckpointFile.IsSameFile(other, full) || SafePath.RealPathOrSelf(other) == real)
            {
                if (otherRole == role)
                {
                    return other;
                }
                throw new InvalidInputException($"{path}: the {role} would be the same file as the {otherRole} {other}; give them different names.");
            }
        }
        _outputs.Add((full, role));
        return full;
    }

    /// <summary>
    /// Declares a file to delete once the set is committed (a shard the previous index named, an ONNX data file the
    /// previous model used), checked like an output.
    /// </summary>
    public void DeleteOnCommit(string path, string role)
    {
        var full = AddOutput(path, role);
        _deletions.Add(full);
    }

    /// <summary>
    /// Writes a file of the set: <paramref name="write"/> fills a temporary file beside <paramref name="path"/>, which is
    /// flushed to disk and renamed into place by <see cref="Commit"/>. An undeclared path is declared as an output first.
    /// If <paramref name="write"/> throws, its temporary is deleted and the exception passes on.
    /// </summary>
    public void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var full = AddOutput(path, _outputs.FirstOrDefault(o => o.Path == Path.GetFullPath(path)).Role ?? "output");
        var tmp = AtomicFile.WriteTemporary(full, write);
        var again = _staged.FindIndex(s => s.Final == full);
        if (again >= 0)
        {
            AtomicFile.DeleteTemporary(_staged[again].Temp);
            _staged.RemoveAt(again);
        }
        _staged.Add((tmp, full));
    }

    /// <summary>
    /// Takes the lock of an output that spans several files (a sharded index, an ONNX model with its data file), so that
    /// two processes writing it at once cannot interleave their files: a lock file <c>.NAME.graft-lock</c> beside it,
    /// held (an advisory <c>flock</c> through .NET's FileShare.None) until the set is committed or disposed, and deleted then.
    /// </summary>
    /// <exception cref="IOException">Another process (or another set) holds it; the message says so.</exception>
    public void Lock(string path)
    {
        ThrowIfDone();
        var full = Path.GetFullPath(path);
        if (RawPath.IsRawName(full))
        {
            // The index names its shards, the model its data file, as UTF-8 text: files named after a name that is not
            // UTF-8 could not be named there.
            throw new InvalidInputException($"{path}: the file name is not UTF-8, and this output names the files written beside it (shards, external data) after it, as UTF-8 text inside the file; choose a UTF-8 file name (the folder's name may be anything).");
        }
        var lockPath = Path.Combine(Path.GetDirectoryName(full)!, "." + Path.GetFileName(full) + ".graft-lock");
        for (var attempt = 0; ; attempt++)
        {
            FileStream fs;
            try
            {
                fs = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException ex) when (ex is not (FileNotFoundException or DirectoryNotFoundException or PathTooLongException))
            {
                throw new IOException($"{path}: another graft process is writing it (its lock {lockPath} is held); nothing was written, try again when it has finished.", ex);
            }
            // The previous holder deletes the lock file before releasing it: a lock taken on a deleted file locks nothing.
            if (!FileIdentity.Supported || (FileIdentity.Of(fs.SafeFileHandle) is { } held && FileIdentity.Of(lockPath, followLastLink: false) is { } named && held.SameFileAs(named)))
            {
                _locks.Add(fs);
                return;
            }
            fs.Dispose();
            if (attempt >= 3)
            {
                throw new IOException($"{path}: another graft process is writing it (its lock {lockPath} keeps changing); nothing was written, try again when it has finished.");
            }
        }
    }

    /// <summary>
    /// Renames every staged file into place, in the order written, then deletes the files declared with
    /// <see cref="DeleteOnCommit"/> (best effort: one left behind names nothing) and releases the locks. Returns the files written.
    /// </summary>
    public IReadOnlyList<string> Commit()
    {
        ThrowIfDone();
        var written = new List<string>();
        foreach (var (tmp, final) in _staged)
        {
            AtomicFile.MoveIntoPlace(tmp, final);
            AtomicFile.Forget(tmp);
            written.Add(final);
        }
        _staged.Clear();
        _committed = true;
        foreach (var d in _deletions.Where(d => !written.Contains(d)))
        {
            if (FileIdentity.Of(d, followLastLink: false) is not { Kind: FileKind.SymbolicLink })
            {
                AtomicFile.TryDelete(d);
            }
        }
        ReleaseLocks();
        return written;
    }

    /// <summary>Deletes every temporary not committed, releases the locks, and ends the set's time as <see cref="Current"/>.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (var (tmp, _) in _staged)
        {
            AtomicFile.DeleteTemporary(tmp);
        }
        _staged.Clear();
        ReleaseLocks();
        if (ReferenceEquals(Ambient.Value, this))
        {
            Ambient.Value = _outer;
        }
    }

    /// <summary>
    /// Deletes every temporary file this process is writing or has staged (for a signal handler: the process is about
    /// to end, and nothing it staged must be left behind). Safe to call from any thread.
    /// </summary>
    public static void RemoveTemporaries() => AtomicFile.RemoveAllTemporaries();

    private void ReleaseLocks()
    {
        foreach (var fs in _locks)
        {
            // Delete while holding it, so a process that opens the name afterwards locks a new file, and one that
            // opened this file meanwhile sees that it was deleted.
            AtomicFile.TryDelete(fs.Name);
            fs.Dispose();
        }
        _locks.Clear();
    }

    private void ThrowIfDone()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed)
        {
            throw new InvalidOperationException("The output set is already committed.");
        }
    }

    private static readonly ConcurrentDictionary<string, bool> Swept = new(StringComparer.Ordinal);

    /// <summary>Temporary names as <see cref="AtomicFile.TemporaryName"/> makes them: the writer's process id in the middle.</summary>
    private static readonly Regex TemporaryPattern = new(@"^\..*\.graft(\d{1,10})\.[0-9a-f]{8}\.tmp$", RegexOptions.CultureInvariant | RegexOptions.Singleline, TimeSpan.FromSeconds(1));

    /// <summary>How long a stale temporary must have been left alone before another process deletes it.</summary>
    internal static TimeSpan StaleAge { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Once per folder and process: deletes Graft temporaries in <paramref name="folder"/> whose writing process is gone
    /// and that have not been modified for <see cref="StaleAge"/>; only regular files of Graft's own naming.
    /// </summary>
    internal static void SweepStaleTemporaries(string folder)
    {
        if (!Swept.TryAdd(folder, true))
        {
            return;
        }
        IEnumerable<string> candidates;
        try
        {
            candidates = Directory.EnumerateFiles(folder, ".*.tmp").ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return;
        }
        foreach (var file in candidates)
        {
            var m = TemporaryPattern.Match(Path.GetFileName(file));
            if (!m.Success || !int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || pid == Environment.ProcessId || ProcessAlive(pid))
            {
                continue;
            }
            try
            {
                var info = new FileInfo(file);
                if (info.LinkTarget is not null || DateTime.UtcNow - info.LastWriteTimeUtc < StaleAge)
                {
                    continue;
                }
                if (FileIdentity.Of(file, followLastLink: false) is { } id && id.Kind != FileKind.Regular)
                {
                    continue;
                }
                File.Delete(file);
                StaleTemporaryRemoved?.Invoke(file);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>True unless the process is known to be gone (so an unknown answer keeps the file).</summary>
    private static bool ProcessAlive(int pid)
    {
        if (OperatingSystem.IsLinux())
        {
            return Directory.Exists("/proc/" + pid.ToString(CultureInfo.InvariantCulture)) || !Directory.Exists("/proc/self");
        }
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
