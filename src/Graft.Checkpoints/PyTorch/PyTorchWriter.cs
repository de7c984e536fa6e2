using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Graft.Checkpoints.PyTorch;

/// <summary>
/// Writes the zip layout <c>torch.save</c> uses since 1.6, in the subset <c>torch.load(weights_only=True)</c> accepts:
/// <c>archive/data.pkl</c> (pickle protocol 2: an OrderedDict of <c>_rebuild_tensor_v2</c> reductions),
/// <c>archive/byteorder</c>, one <c>archive/data/N</c> per tensor, <c>archive/version</c>; entries stored, data aligned
/// to 64 bytes as PyTorch aligns it (so a loader can map it), fixed timestamps so equal input gives equal bytes.
/// </summary>
public static class PyTorchWriter
{
    private const string Root = "archive";
    private const int Alignment = 64;

    /// <summary>
    /// Writes <paramref name="tensors"/> (in order, as a state dict) to <paramref name="path"/> atomically.
    /// </summary>
    /// <exception cref="ArgumentException">Two tensors share a name.</exception>
    /// <exception cref="InvalidInputException">A dtype PyTorch 1.13 storages cannot hold (U16, U32, U64, FP8): the format was the wrong choice for these tensors.</exception>
    public static void Write(string path, IEnumerable<TensorPayload> tensors)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var list = Check(tensors);
        AtomicFile.Write(path, s => Write(s, list));
    }

    /// <summary>Writes to a seekable stream (the CRC of each record is patched into its header afterwards).</summary>
    internal static void Write(Stream destination, IReadOnlyList<TensorPayload> tensors)
    {
        if (!destination.CanSeek)
        {
            throw new ArgumentException("The PyTorch writer needs a seekable stream.", nameof(destination));
        }
        var zip = new ZipWriter(destination);
        zip.Add(Root + "/data.pkl", PickleStateDict(tensors));
        zip.Add(Root + "/byteorder", "little"u8.ToArray());
        for (var i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            zip.Add(Root + "/data/" + i.ToString(CultureInfo.InvariantCulture), t.ByteLength, t.WriteTo, t.Name);
        }
        zip.Add(Root + "/version", "3\n"u8.ToArray());
        zip.Finish();
    }

    private static List<TensorPayload> Check(IEnumerable<TensorPayload> tensors)
    {
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
        {
            ArgumentNullException.ThrowIfNull(t, nameof(tensors));
            if (!names.Add(t.Name))
            {
                throw new ArgumentException($"Two tensors are named '{t.Name}'.", nameof(tensors));
            }
            _ = PickleAllowlist.StorageClassName(t.DType);
        }
        return list;
    }

    /// <summary>The pickle torch writes for a state dict, restricted to opcodes torch 1.13's weights-only loader knows.</summary>
    internal static byte[] PickleStateDict(IReadOnlyList<TensorPayload> tensors)
    {
        var p = new PickleBuilder();
        p.Proto2();
        p.Global("collections", "OrderedDict");
        p.EmptyTuple();
        p.Reduce();
        for (var batch = 0; batch < tensors.Count; batch += 1000)
        {
            p.Mark();
            for (var i = batch; i < Math.Min(tensors.Count, batch + 1000); i++)
            {
                var t = tensors[i];
                p.Unicode(t.Name);
                p.Global("torch._utils", "_rebuild_tensor_v2");
                p.Mark();
                {
                    p.Mark();
                    p.Unicode("storage");
                    p.Global("torch", PickleAllowlist.StorageClassName(t.DType));
                    p.Unicode(i.ToString(CultureInfo.InvariantCulture));
                    p.Unicode("cpu");
                    p.Int(t.Shape.ElementCount);
                    p.Tuple();
                    p.BinPersId();
                    p.Int(0);
                    p.IntTuple(t.Shape.ToArray());
                    p.IntTuple(ContiguousStrides(t.Shape));
                    p.False();
                    p.Global("collections", "OrderedDict");
                    p.EmptyTuple();
                    p.Reduce();
                }
                p.Tuple();
                p.Reduce();
            }
            p.SetItems();
        }
        p.Stop();
        return p.ToArray();
    }

    // torch's contiguous strides: a zero-sized dimension counts as 1 for the strides of the ones before it.
    private static long[] ContiguousStrides(Shape shape)
    {
        var strides = new long[shape.Rank];
        long s = 1;
        for (var i = shape.Rank - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= Math.Max(shape[i], 1);
        }
        return strides;
    }

    private sealed class PickleBuilder
    {
        private readonly ArrayBufferWriter<byte> _out = new();
        private readonly Dictionary<(string, string), int> _globals = [];

        public void Proto2() => _out.Write<byte>([Op.PROTO, 2]);

        public void Mark() => _out.Write<byte>([Op.MARK]);

        public void Tuple() => _out.Write<byte>([Op.TUPLE]);

        public void EmptyTuple() => _out.Write<byte>([Op.EMPTY_TUPLE]);

        public void Reduce() => _out.Write<byte>([Op.REDUCE]);

        public void BinPersId() => _out.Write<byte>([Op.BINPERSID]);

        public void False() => _out.Write<byte>([Op.NEWFALSE]);

        public void SetItems() => _out.Write<byte>([Op.SETITEMS]);

        public void Stop() => _out.Write<byte>([Op.STOP]);

        // Globals are written once and memoised, as pickle does; later uses fetch them from the memo.
        public void Global(string module, string name)
        {
            if (_globals.TryGetValue((module, name), out var index))
            {
                if (index < 256)
                {
                    _out.Write<byte>([Op.BINGET, (byte)index]);
                }
                else
                {
                    _out.Write<byte>([Op.LONG_BINGET]);
                    WriteU32((uint)index);
                }
                return;
            }
            _out.Write<byte>([Op.GLOBAL]);
            _out.Write(Encoding.ASCII.GetBytes(module + "\n" + name + "\n"));
            index = _globals.Count;
            _globals[(module, name)] = index;
            if (index < 256)
            {
                _out.Write<byte>([Op.BINPUT, (byte)index]);
            }
            else
            {
                _out.Write<byte>([Op.LONG_BINPUT]);
                WriteU32((uint)index);
            }
        }

        public void Unicode(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            _out.Write<byte>([Op.BINUNICODE]);
            WriteU32((uint)bytes.Length);
            _out.Write<byte>(bytes);
        }

        public void Int(long v)
        {
            if (v is >= 0 and < 256)
            {
                _out.Write<byte>([Op.BININT1, (byte)v]);
            }
            else if (v is >= 0 and < 65536)
            {
                _out.Write<byte>([Op.BININT2]);
                Span<byte> b = stackalloc byte[2];
                BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v);
                _out.Write<byte>(b);
            }
            else if (v is >= int.MinValue and <= int.MaxValue)
            {
                _out.Write<byte>([Op.BININT]);
                Span<byte> b = stackalloc byte[4];
                BinaryPrimitives.WriteInt32LittleEndian(b, (int)v);
                _out.Write<byte>(b);
            }
            else
            {
                // LONG1: the shortest little-endian two's complement, as pickle's encode_long writes it.
                var bytes = new System.Numerics.BigInteger(v).ToByteArray();
                _out.Write<byte>([Op.LONG1, (byte)bytes.Length]);
                _out.Write<byte>(bytes);
            }
        }

        public void IntTuple(long[] values)
        {
            switch (values.Length)
            {
                case 0:
                    EmptyTuple();
                    return;
                case 1:
                    Int(values[0]);
                    _out.Write<byte>([Op.TUPLE1]);
                    return;
                case 2:
                    Int(values[0]);
                    Int(values[1]);
                    _out.Write<byte>([Op.TUPLE2]);
                    return;
                case 3:
                    Int(values[0]);
                    Int(values[1]);
                    Int(values[2]);
                    _out.Write<byte>([Op.TUPLE3]);
                    return;
                default:
                    Mark();
                    foreach (var v in values)
                    {
                        Int(v);
                    }
                    Tuple();
                    return;
            }
        }

        public byte[] ToArray() => _out.WrittenSpan.ToArray();

        private void WriteU32(uint v)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(b, v);
            _out.Write<byte>(b);
        }
    }

    /// <summary>A minimal zip writer: stored entries, 64-byte aligned data, zip64 when sizes or offsets need it.</summary>
    private sealed class ZipWriter(Stream output)
    {
        private readonly List<(byte[] Name, long Offset, long Size, uint Crc)> _entries = [];

        public void Add(string name, byte[] data) => Add(name, data.Length, s => s.Write(data), name);

        public void Add(string name, long size, Action<Stream> writeData, string what)
        {
            var nameBytes = Encoding.UTF8.GetBytes(name);
            var offset = output.Position;
            var zip64 = size >= 0xFFFFFFFF;
            var zip64Extra = zip64 ? 20 : 0;
            var fixedLength = 30 + nameBytes.Length + zip64Extra;
            var pad = (int)((Alignment - ((offset + fixedLength + 4) % Alignment)) % Alignment);
            var header = new byte[fixedLength + 4 + pad];
            var h = header.AsSpan();
            BinaryPrimitives.WriteUInt32LittleEndian(h, 0x04034b50);
            BinaryPrimitives.WriteUInt16LittleEndian(h[4..], (ushort)(zip64 ? 45 : 20));
            // flags 0, method 0 (stored), time 0, date 0 (fixed: output depends only on input); CRC patched below.
            BinaryPrimitives.WriteUInt32LittleEndian(h[18..], zip64 ? 0xFFFFFFFF : (uint)size);
            BinaryPrimitives.WriteUInt32LittleEndian(h[22..], zip64 ? 0xFFFFFFFF : (uint)size);
            BinaryPrimitives.WriteUInt16LittleEndian(h[26..], (ushort)nameBytes.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(h[28..], (ushort)(zip64Extra + 4 + pad));
            nameBytes.CopyTo(h[30..]);
            var x = h[(30 + nameBytes.Length)..];
            if (zip64)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(x, 1);
                BinaryPrimitives.WriteUInt16LittleEndian(x[2..], 16);
                BinaryPrimitives.WriteInt64LittleEndian(x[4..], size);
                BinaryPrimitives.WriteInt64LittleEndian(x[12..], size);
                x = x[20..];
            }
            // PyTorch's own padding field: id "FB", filled with 'Z'.
            x[0] = (byte)'F';
            x[1] = (byte)'B';
            BinaryPrimitives.WriteUInt16LittleEndian(x[2..], (ushort)pad);
            x.Slice(4, pad).Fill((byte)'Z');
            output.Write(header);

            var counter = new CrcStream(output);
            writeData(counter);
            if (counter.Count != size)
            {
                throw new InvalidOperationException($"Tensor payload '{what}' wrote {counter.Count} bytes instead of {size}.");
            }
            var end = output.Position;
            output.Position = offset + 14;
            Span<byte> crc = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(crc, counter.Crc);
            output.Write(crc);
            output.Position = end;
            _entries.Add((nameBytes, offset, size, counter.Crc));
        }

        public void Finish()
        {
            var cdOffset = output.Position;
            foreach (var (name, offset, size, crc) in _entries)
            {
                var bigSize = size >= 0xFFFFFFFF;
                var bigOffset = offset >= 0xFFFFFFFF;
                var extraLength = (bigSize || bigOffset) ? 4 + (bigSize ? 16 : 0) + (bigOffset ? 8 : 0) : 0;
                var c = new byte[46 + name.Length + extraLength];
                var s = c.AsSpan();
                BinaryPrimitives.WriteUInt32LittleEndian(s, 0x02014b50);
                BinaryPrimitives.WriteUInt16LittleEndian(s[4..], extraLength > 0 ? (ushort)45 : (ushort)20);
                BinaryPrimitives.WriteUInt16LittleEndian(s[6..], extraLength > 0 ? (ushort)45 : (ushort)20);
                BinaryPrimitives.WriteUInt32LittleEndian(s[16..], crc);
                BinaryPrimitives.WriteUInt32LittleEndian(s[20..], bigSize ? 0xFFFFFFFF : (uint)size);
                BinaryPrimitives.WriteUInt32LittleEndian(s[24..], bigSize ? 0xFFFFFFFF : (uint)size);
                BinaryPrimitives.WriteUInt16LittleEndian(s[28..], (ushort)name.Length);
                BinaryPrimitives.WriteUInt16LittleEndian(s[30..], (ushort)extraLength);
                BinaryPrimitives.WriteUInt32LittleEndian(s[42..], bigOffset ? 0xFFFFFFFF : (uint)offset);
                name.CopyTo(s[46..]);
                if (extraLength > 0)
                {
                    var x = s[(46 + name.Length)..];
                    BinaryPrimitives.WriteUInt16LittleEndian(x, 1);
                    BinaryPrimitives.WriteUInt16LittleEndian(x[2..], (ushort)(extraLength - 4));
                    x = x[4..];
                    if (bigSize)
                    {
                        BinaryPrimitives.WriteInt64LittleEndian(x, size);
                        BinaryPrimitives.WriteInt64LittleEndian(x[8..], size);
                        x = x[16..];
                    }
                    if (bigOffset)
                    {
                        BinaryPrimitives.WriteInt64LittleEndian(x, offset);
                    }
                }
                output.Write(c);
            }
            var cdSize = output.Position - cdOffset;
            var needs64 = _entries.Count >= 0xFFFF || cdOffset >= 0xFFFFFFFF || cdSize >= 0xFFFFFFFF;
            if (needs64)
            {
                var e64Offset = output.Position;
                var e = new byte[56 + 20];
                var s = e.AsSpan();
                BinaryPrimitives.WriteUInt32LittleEndian(s, 0x06064b50);
                BinaryPrimitives.WriteInt64LittleEndian(s[4..], 44);
                BinaryPrimitives.WriteUInt16LittleEndian(s[12..], 45);
                BinaryPrimitives.WriteUInt16LittleEndian(s[14..], 45);
                BinaryPrimitives.WriteInt64LittleEndian(s[24..], _entries.Count);
                BinaryPrimitives.WriteInt64LittleEndian(s[32..], _entries.Count);
                BinaryPrimitives.WriteInt64LittleEndian(s[40..], cdSize);
                BinaryPrimitives.WriteInt64LittleEndian(s[48..], cdOffset);
                BinaryPrimitives.WriteUInt32LittleEndian(s[56..], 0x07064b50);
                BinaryPrimitives.WriteInt64LittleEndian(s[64..], e64Offset);
                BinaryPrimitives.WriteUInt32LittleEndian(s[72..], 1);
                output.Write(e);
            }
            var end = new byte[22];
            var t = end.AsSpan();
            BinaryPrimitives.WriteUInt32LittleEndian(t, 0x06054b50);
            BinaryPrimitives.WriteUInt16LittleEndian(t[8..], (ushort)Math.Min(_entries.Count, 0xFFFF));
            BinaryPrimitives.WriteUInt16LittleEndian(t[10..], (ushort)Math.Min(_entries.Count, 0xFFFF));
            BinaryPrimitives.WriteUInt32LittleEndian(t[12..], needs64 ? 0xFFFFFFFF : (uint)cdSize);
            BinaryPrimitives.WriteUInt32LittleEndian(t[16..], needs64 ? 0xFFFFFFFF : (uint)cdOffset);
            output.Write(end);
        }
    }

    /// <summary>Passes writes through while counting them and computing their CRC-32.</summary>
    private sealed class CrcStream(Stream inner) : Stream
    {
        public uint Crc { get; private set; }

        public long Count { get; private set; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => Count; set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Crc = Crc32.Append(Crc, buffer);
            Count += buffer.Length;
            inner.Write(buffer);
        }

        public override void WriteByte(byte value) => Write([value]);
    }
}
