using System.Diagnostics;
using System.Text;
using Graft.TestSupport;

namespace Graft.Checkpoints.Tests;

/// <summary>
/// Atomic writes: the temporary name fits the file system's name limit whatever the output's name, and an output that
/// is no regular file (a device, a FIFO, a link to either, a path into /proc) is refused instead of renamed over.
/// </summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static void WriteBytes(string path) => AtomicFile.Write(path, s => s.Write([1, 2, 3]));

    [Theory]
    [InlineData(239)]
    [InlineData(252)]
    [InlineData(255)]
    public void Write_LongName_Succeeds(int length)
    {
        var path = _dir.File(new string('n', length - ".bin".Length) + ".bin");
        WriteBytes(path);
        Assert.Equal([1, 2, 3], File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void Write_255ByteMultibyteName_Succeeds()
    {
        // 125 two-byte characters, then five ASCII: 255 UTF-8 bytes, 130 characters.
        var path = _dir.File(new string('é', 125) + "x.bin");
        WriteBytes(path);
        Assert.True(File.Exists(path));
    }

    [Fact]
    public void TemporaryName_AnyName_StaysWithinNameMax()
    {
        foreach (var name in new[] { "a", new string('x', 255), new string('é', 127) + "a", string.Concat(Enumerable.Repeat("😀", 63)) + "abc" })
        {
            var tmp = AtomicFile.TemporaryName(name);
            Assert.True(Encoding.UTF8.GetByteCount(tmp) <= AtomicFile.MaxNameBytes, $"{tmp.Length} characters");
            Assert.StartsWith(".", tmp, StringComparison.Ordinal);
            Assert.EndsWith(".tmp", tmp, StringComparison.Ordinal);
            Assert.Equal(tmp, Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(tmp))); // no split surrogate pair
        }
    }

    [UnixOnlyFact]
    public void Write_OverAFifo_IsRefusedAndTheFifoStays()
    {
        var fifo = SpecialFiles.MakeFifo(_dir.File("out.bin"));
        var ex = Assert.Throws<InvalidInputException>(() => WriteBytes(fifo));
        Assert.Contains("named pipe", ex.Message, StringComparison.Ordinal);
        Assert.Equal(["out.bin"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
        Assert.Equal(FileKind.Fifo, FileIdentity.Of(fifo, followLastLink: false)!.Value.Kind);
    }

    [UnixOnlyFact]
    public void Write_OverALinkToDevNull_IsRefused()
    {
        var link = _dir.File("null.bin");
        File.CreateSymbolicLink(link, "/dev/null");
        var ex = Assert.Throws<InvalidInputException>(() => WriteBytes(link));
        Assert.Contains("character device", ex.Message, StringComparison.Ordinal);
        Assert.Equal("/dev/null", new FileInfo(link).LinkTarget);
    }

    [UnixOnlyFact]
    public void Write_OverADeviceNode_IsRefused()
    {
        // As root (CI) a character device like /dev/null can be made here; elsewhere /dev/null itself is examined only.
        var node = _dir.File("devnull");
        var psi = new ProcessStartInfo("mknod") { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in new[] { node, "c", "1", "3" })
        {
            psi.ArgumentList.Add(a);
        }
        using (var p = Process.Start(psi)!)
        {
            p.WaitForExit();
        }
        var target = File.Exists(node) ? node : "/dev/null";
        Assert.Throws<InvalidInputException>(() => AtomicFile.EnsureReplaceable(target));
        if (target == node)
        {
            Assert.Throws<InvalidInputException>(() => WriteBytes(node));
            Assert.Equal(["devnull"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
        }
    }

    [LinuxOnlyFact("/proc is Linux's")]
    public void EnsureReplaceable_PathIntoProc_IsRefused()
    {
        var link = _dir.File("proc.bin");
        File.CreateSymbolicLink(link, "/proc/self/attr-graft-test");
        Assert.Throws<InvalidInputException>(() => AtomicFile.EnsureReplaceable(link));
    }
}
