using Graft.Checkpoints;
using Graft.Checkpoints.Safetensors;
using Graft.TestSupport;

namespace Graft.Checkpoints.Tests.Safetensors;

/// <summary>
/// Copied tensors take the kernel path (<c>copy_file_range</c>) when source and destination are files and the tensor is
/// large, and the buffered path otherwise; both must give the same bytes, in the same places, interleaved in any order.
/// </summary>
public sealed class SafetensorsCopyTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "graft-copy-" + Guid.NewGuid().ToString("N")[..10]);

    public SafetensorsCopyTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TensorPayload Random(string name, long elements, int seed)
    {
        var bytes = new byte[elements * 4];
        new Random(seed).NextBytes(bytes);
        return TensorPayload.FromBytes(name, DType.F32, new Shape(elements), bytes);
    }

    private string MakeSource()
    {
        var path = Path.Combine(_dir, "src.safetensors");
        long big = (FileCopy.MinimumBytes / 4) + 13; // odd sizes, so kernel copies start at unaligned offsets
        SafetensorsWriter.Write(path, [Random("a", 3, 1), Random("big1", big, 2), Random("b", 5, 3), Random("big2", 3 * big, 4), Random("c", 1, 5)]);
        return path;
    }

    [Fact]
    public void Write_FromCheckpointToFile_CopiesLargeAndSmallTensorsBitExact()
    {
        var src = MakeSource();
        var dst = Path.Combine(_dir, "dst.safetensors");
        using (var reader = CheckpointFile.Open(src))
        {
            // Reverse order: every copy starts somewhere else in the source than where it lands in the output.
            SafetensorsWriter.Write(dst, reader.Tensors.Reverse().Select(t => TensorPayload.FromCheckpoint(reader, t)));
        }
        using var a = CheckpointFile.Open(src);
        using var b = CheckpointFile.Open(dst);
        Assert.Equal(a.Tensors.Select(t => t.Name).Reverse(), b.Tensors.Select(t => t.Name));
        AssertSameBytes(a, b);
    }

    /// <summary>Every tensor of <paramref name="a"/> has the same bytes under its name in <paramref name="b"/>.</summary>
    private static void AssertSameBytes(ICheckpointReader a, ICheckpointReader b)
    {
        foreach (var t in a.Tensors)
        {
            Assert.True(b.TryGetTensor(t.Name, out var u), t.Name);
            var x = new byte[t.ByteLength];
            var y = new byte[u.ByteLength];
            a.ReadBytes(t, x);
            b.ReadBytes(u, y);
            Assert.True(x.AsSpan().SequenceEqual(y), $"tensor {t.Name} differs after the copy");
        }
    }

    [Fact]
    public void Write_TensorLargerThanOneCopyChunk_IsCopiedInChunksBitExact()
    {
        // The kernel copy goes in chunks (and starts the disk writing each one while the next is copied): a tensor just
        // over one chunk exercises the hand-over between chunks at an unaligned offset.
        var src = Path.Combine(_dir, "src.safetensors");
        SafetensorsWriter.Write(src, [Random("a", 3, 1), Random("huge", (FileCopy.ChunkBytes / 4) + 7, 2), Random("b", 5, 3)]);
        var dst = Path.Combine(_dir, "dst.safetensors");
        using (var reader = CheckpointFile.Open(src))
        {
            SafetensorsWriter.Write(dst, reader.Tensors.Reverse().Select(t => TensorPayload.FromCheckpoint(reader, t)));
        }
        using var a = CheckpointFile.Open(src);
        using var b = CheckpointFile.Open(dst);
        AssertSameBytes(a, b);
    }

    /// <summary>A file stream that counts the bytes handed to it: bytes the kernel copies file to file never pass through it.</summary>
    private sealed class CountingFileStream(string path) : FileStream(path, FileMode.Create, FileAccess.ReadWrite)
    {
        private int _depth; // FileStream's Write overloads call one another: count at the outermost call only

        public long Written { get; private set; }

        private void Counted(long count, Action write)
        {
            if (_depth++ == 0)
            {
                Written += count;
            }
            try
            {
                write();
            }
            finally
            {
                _depth--;
            }
        }

        public override void Write(byte[] buffer, int offset, int count) => Counted(count, () => base.Write(buffer, offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            var copy = buffer.ToArray(); // a span cannot enter the lambda
            Counted(copy.Length, () => base.Write(copy));
        }

        public override void WriteByte(byte value) => Counted(1, () => base.WriteByte(value));
    }

    [LinuxOnlyFact("the kernel copy is Linux's copy_file_range")]
    public void WriteTo_FileStream_LargeTensorsGoThroughTheKernelSmallOnesThroughTheStream()
    {
        // Which path a copy took, seen from outside: the large tensors' bytes must reach the file without one of them
        // passing through the stream's Write, and everything else (header, small tensors) must pass through it.
        var src = MakeSource();
        var dst = Path.Combine(_dir, "dst.safetensors");
        using var reader = CheckpointFile.Open(src);
        long large = reader.Tensors.Where(t => t.ByteLength >= FileCopy.MinimumBytes).Sum(t => t.ByteLength);
        Assert.Equal(2, reader.Tensors.Count(t => t.ByteLength >= FileCopy.MinimumBytes));
        long written;
        using (var file = new CountingFileStream(dst))
        {
            SafetensorsWriter.WriteTo(file, reader.Tensors.Select(t => TensorPayload.FromCheckpoint(reader, t)).ToList());
            file.Flush();
            written = file.Written;
        }
        Assert.Equal(new FileInfo(dst).Length - large, written);
        using var copy = CheckpointFile.Open(dst);
        AssertSameBytes(reader, copy);
    }

    [Fact]
    public void WriteTo_MemoryStream_EveryByteGoesThroughTheStream()
    {
        // The buffered path: no file to copy into, so the large tensors are read and written like the small ones.
        var src = MakeSource();
        using var reader = CheckpointFile.Open(src);
        using var memory = new MemoryStream();
        SafetensorsWriter.WriteTo(memory, reader.Tensors.Select(t => TensorPayload.FromCheckpoint(reader, t)).ToList());
        Assert.Equal(new FileInfo(src).Length, memory.Length);
        Assert.Equal(File.ReadAllBytes(src), memory.ToArray());
    }

    [Fact]
    public void Write_FromCheckpointToMemory_GivesTheSameBytesAsToAFile()
    {
        var src = MakeSource();
        var dst = Path.Combine(_dir, "dst.safetensors");
        using var reader = CheckpointFile.Open(src);
        var payloads = reader.Tensors.Select(t => TensorPayload.FromCheckpoint(reader, t)).ToList();
        SafetensorsWriter.Write(dst, payloads);
        using var memory = new MemoryStream();
        SafetensorsWriter.WriteTo(memory, payloads);
        Assert.Equal(File.ReadAllBytes(dst), memory.ToArray());
    }
}
