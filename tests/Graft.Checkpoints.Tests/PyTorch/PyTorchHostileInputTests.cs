using System.Text;
using Graft.Checkpoints.PyTorch;
using static Graft.Checkpoints.Tests.PyTorch.Pickle;

namespace Graft.Checkpoints.Tests.PyTorch;

/// <summary>
/// One named test per rule in REFERENCES.md's hostile-input checklist that concerns pickles and zips. Each asserts the
/// error kind and that the message names the file (and the tensor, where one is involved).
/// </summary>
public sealed class PyTorchHostileInputTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly byte[] SixFloats = new byte[24];

    private string Checkpoint(byte[] dataPkl, string name = "x.pt", byte[]? storage = null) =>
        Checkpoint(dataPkl, [("0", storage ?? SixFloats)], name);

    private string Checkpoint(byte[] dataPkl, IEnumerable<(string, byte[])> storages, string name = "x.pt", string version = "3", string? byteorder = "little")
    {
        var path = _dir.File(name);
        WriteCheckpoint(path, dataPkl, storages, version, byteorder);
        return path;
    }

    private static string Hostile(string name) => Path.Combine(Fixtures.PyTorch, "hostile", name);

    [Fact]
    public void Sanity_HandBuiltCheckpoint_Reads()
    {
        var path = Checkpoint(OneTensor(6, 0, [2, 3], [3, 1]));
        using var r = PyTorchReader.Open(path);
        Assert.Equal(new Shape(2, 3), r.Tensors.Single().Shape);
    }

    [Fact]
    public void Open_GlobalOutsideAllowlist_NamesTheGlobal()
    {
        Expect.Fails(Hostile("os_system.pt"), CheckpointErrorKind.ForbiddenGlobal, "posix.system");
        // Protocol 2 spells the builtins module by its Python 2 name.
        Expect.Fails(Hostile("builtins_eval.pt"), CheckpointErrorKind.ForbiddenGlobal, "__builtin__.eval");
        Expect.Fails(Hostile("os_system_legacy.pt"), CheckpointErrorKind.ForbiddenGlobal, "posix.system");
    }

    [Fact]
    public void Open_PayloadThatWouldCreateAFile_LeavesNoFile()
    {
        const string Marker = "/tmp/graft-hostile-os-system-marker";
        const string EvalMarker = "/tmp/graft-hostile-eval-marker";
        File.Delete(Marker);
        File.Delete(EvalMarker);
        Assert.Throws<CheckpointFormatException>(() => PyTorchReader.Open(Hostile("os_system.pt")));
        Assert.Throws<CheckpointFormatException>(() => PyTorchReader.Open(Hostile("os_system_legacy.pt")));
        Assert.Throws<CheckpointFormatException>(() => PyTorchReader.Open(Hostile("builtins_eval.pt")));
        Assert.False(File.Exists(Marker));
        Assert.False(File.Exists(EvalMarker));
    }

    [Fact]
    public void Open_HandBuiltGlobalViaStackGlobal_NamesTheGlobal()
    {
        var pkl = Assemble((byte)0x80, (byte)4, "os", "system", (byte)0x93, "touch /tmp/x", (byte)0x85, 'R', '.');
        Expect.Fails(Checkpoint(pkl), CheckpointErrorKind.ForbiddenGlobal, "os.system");
    }

    [Fact]
    public void Open_UnsupportedOpcode_NamesTheOpcode()
    {
        // INST: protocol 0's "import module.name and call it", which the whitelist does not contain.
        var pkl = Assemble((byte)0x80, (byte)2, '(', 'i', Encoding.ASCII.GetBytes("os\nsystem\n"), '.');
        Expect.Fails(Checkpoint(pkl), CheckpointErrorKind.ForbiddenOpcode, "INST");
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, OrderedDict, ')', (byte)0x81, '.'), "newobj.pt"), CheckpointErrorKind.ForbiddenOpcode, "NEWOBJ");
    }

    [Fact]
    public void Open_MemoMiss_IsCorrupt()
    {
        var pkl = Assemble((byte)0x80, (byte)2, 'h', (byte)7, '.');
        Expect.Fails(Checkpoint(pkl), CheckpointErrorKind.Corrupt, "memo entry 7");
    }

    [Fact]
    public void Open_StackUnderflow_IsCorrupt()
    {
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, 's', '.')), CheckpointErrorKind.Corrupt, "underflow");
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, '.'), "empty.pt"), CheckpointErrorKind.Corrupt, "underflow");
    }

    [Fact]
    public void Open_MissingStop_IsCorrupt()
    {
        var full = OneTensor(6, 0, [6], [1]);
        Expect.Fails(Checkpoint(full[..^1]), CheckpointErrorKind.Corrupt, "STOP");
    }

    [Fact]
    public void Open_MarkMisuse_IsCorrupt()
    {
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, ')', 't', '.')), CheckpointErrorKind.Corrupt, "without a MARK");
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, ')', '(', '.'), "open-mark.pt"), CheckpointErrorKind.Corrupt, "unclosed MARK");
    }

    [Fact]
    public void Open_SetItemOnNonDict_IsForbidden()
    {
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, ']', "k", "v", 's', '.')), CheckpointErrorKind.ForbiddenOpcode, "SETITEM on a list");
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, ')', '(', "k", "v", 'u', '.'), "setitems.pt"), CheckpointErrorKind.ForbiddenOpcode, "SETITEMS on a tuple");
    }

    [Fact]
    public void Open_AppendOnNonList_IsForbidden()
    {
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, '}', "v", 'a', '.')), CheckpointErrorKind.ForbiddenOpcode, "APPEND on a dict");
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, ')', '(', "v", 'e', '.'), "appends.pt"), CheckpointErrorKind.ForbiddenOpcode, "APPENDS on a tuple");
    }

    [Fact]
    public void Open_BuildOnWrongObject_IsForbidden()
    {
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, ']', '}', 'b', '.')), CheckpointErrorKind.ForbiddenOpcode, "BUILD on a list");
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, '}', '}', 'b', '.'), "plain-dict.pt"), CheckpointErrorKind.ForbiddenOpcode, "BUILD on a dict");
    }

    [Fact]
    public void Open_ReduceWithWrongArguments_IsForbidden()
    {
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, OrderedDict, "x", (byte)0x85, 'R', '.')), CheckpointErrorKind.ForbiddenOpcode, "OrderedDict");
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, FloatStorage, ')', 'R', '.'), "storage-call.pt"), CheckpointErrorKind.ForbiddenOpcode, "torch.FloatStorage");
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, Rebuild, "a", "b", (byte)0x86, 'R', '.'), "rebuild-args.pt"), CheckpointErrorKind.ForbiddenOpcode, "_rebuild_tensor_v2");
        Expect.Fails(Checkpoint(Assemble((byte)0x80, (byte)2, "s", ')', 'R', '.'), "str-call.pt"), CheckpointErrorKind.ForbiddenOpcode, "REDUCE on a str");
    }

    [Fact]
    public void Open_PersistentIdOfWrongForm_IsForbidden()
    {
        var four = Tuple("storage", FloatStorage, "0", "cpu");
        Expect.Fails(Checkpoint(OneTensor(6, 0, [6], [1], four)), CheckpointErrorKind.ForbiddenOpcode, "persistent id");
        var module = Tuple("module", FloatStorage, "0", "cpu", 6);
        Expect.Fails(Checkpoint(OneTensor(6, 0, [6], [1], module), "module.pt"), CheckpointErrorKind.ForbiddenOpcode, "persistent id");
        var notAClass = Tuple("storage", "FloatStorage", "0", "cpu", 6);
        Expect.Fails(Checkpoint(OneTensor(6, 0, [6], [1], notAClass), "class.pt"), CheckpointErrorKind.ForbiddenOpcode, "persistent id");
        var notATuple = new object[] { "storage" };
        Expect.Fails(Checkpoint(OneTensor(6, 0, [6], [1], notATuple), "str.pt"), CheckpointErrorKind.ForbiddenOpcode, "persistent id");
    }

    [Fact]
    public void Open_StorageKeyThatClimbs_IsUnsafePath()
    {
        var climbing = Tuple("storage", FloatStorage, "../../etc/passwd", "cpu", 6);
        Expect.Fails(Checkpoint(OneTensor(6, 0, [6], [1], climbing)), CheckpointErrorKind.UnsafePath, "../../etc/passwd");
    }

    [Fact]
    public void Open_NumelTimesSizeDiffersFromRecord_IsLengthMismatch()
    {
        Expect.Fails(Checkpoint(OneTensor(10, 0, [6], [1])), CheckpointErrorKind.LengthMismatch, "storage '0'");
    }

    [Fact]
    public void Open_HugeNumelInSmallFile_FailsBeforeAllocating()
    {
        Expect.Fails(Checkpoint(OneTensor(1L << 61, 0, [6], [1])), CheckpointErrorKind.SizeOverflow, "storage '0'");
        Expect.Fails(Checkpoint(OneTensor(1L << 40, 0, [6], [1]), "big.pt"), CheckpointErrorKind.LengthMismatch, "storage '0'");
    }

    [Fact]
    public void Open_OffsetOutsideStorage_IsOutOfBoundsNamingTheTensor()
    {
        var e = Expect.Fails(Checkpoint(OneTensor(6, 5, [4], [1])), CheckpointErrorKind.OutOfBounds, "'w'");
        Assert.Equal("w", e.TensorName);
        var empty = Expect.Fails(Checkpoint(OneTensor(6, 7, [0], [1]), "empty.pt"), CheckpointErrorKind.OutOfBounds);
        Assert.Equal("w", empty.TensorName);
    }

    [Fact]
    public void Open_StrideOutsideStorage_IsOutOfBoundsNamingTheTensor()
    {
        var e = Expect.Fails(Checkpoint(OneTensor(6, 0, [2, 3], [10, 1])), CheckpointErrorKind.OutOfBounds, "'w'");
        Assert.Equal("w", e.TensorName);
        var overflow = Expect.Fails(Checkpoint(OneTensor(6, 0, [3, 3], [long.MaxValue / 2, 1]), "overflow.pt"), CheckpointErrorKind.SizeOverflow);
        Assert.Equal("w", overflow.TensorName);
    }

    [Fact]
    public void Open_StrideZeroViewWithinTheLimit_ReadsAsRepeatedElements()
    {
        // torch.ones(1).expand(1000) saved as is: one stored float, 1000 logical ones.
        using var r = CheckpointFile.Open(Checkpoint(OneTensor(1, 0, [1000], [0]), "expand.pt", BitConverter.GetBytes(1.5f)));
        var t = Assert.Single(r.Tensors);
        Assert.Equal(4000, t.ByteLength);
        var bytes = new byte[t.ByteLength];
        r.ReadBytes(t, bytes);
        Assert.All(Enumerable.Range(0, 1000), i => Assert.Equal(1.5f, BitConverter.ToSingle(bytes, 4 * i)));
    }

    [Fact]
    public void Open_StrideZeroViewDeclaringAGigabyte_IsRefusedBeforeAnythingIsWritten()
    {
        // Four bytes of storage declaring 1 GiB of output: converting it would write the gigabyte.
        var e = Expect.Fails(Checkpoint(OneTensor(1, 0, [1L << 28], [0]), "bomb.pt", new byte[4]), CheckpointErrorKind.InvalidShape, "repeats");
        Assert.Equal("w", e.TensorName);
        Assert.Contains("256 MiB", e.Message);
    }

    /// <summary>
    /// Issue 21: 10,000 tensors that each view the whole of one 1 MiB storage are valid PyTorch (tied weights taken
    /// to the extreme). They declare 9.8 GiB; the reader says the file stores 1 MiB of them, in one shared storage,
    /// and each tensor reads its own (the storage's) values.
    /// </summary>
    [Fact]
    public void Open_TenThousandTensorsSharingOneStorage_SaysWhatIsStoredAndShared()
    {
        const int tensors = 10_000;
        const long numel = 1 << 18; // 1 MiB of float32
        using var r = PyTorchReader.Open(SharedViews(tensors, numel));
        Assert.Equal(tensors, r.Tensors.Count);
        Assert.Equal(tensors * numel * 4, r.Tensors.Sum(t => t.ByteLength));
        Assert.Equal(numel * 4, r.StoredByteLength);
        Assert.Equal(1, r.SharedStorageCount);
        Assert.Equal(tensors, r.TensorsOnSharedStorages);
        var last = r.Tensors[^1];
        var bytes = new byte[last.ByteLength];
        r.ReadBytes(last, bytes);
        Assert.Equal(2.5f, BitConverter.ToSingle(bytes, bytes.Length - 4));
    }

    /// <summary>
    /// Issue 21: converting such a file writes every view in full (that one, 9.8 GiB). On a file system with less free,
    /// the conversion is refused before a byte is written (no temporary either), the message says how sharing inflates
    /// the output, and an existing output is left as it was. Here 200 views of 1 MiB on a disk played as 100 MiB free on
    /// this test's flow only (<see cref="OutputSpace.Pretend"/>), so a broken check costs 200 MiB, not 10 GiB.
    /// </summary>
    [Fact]
    public void Convert_SharedViewsLargerThanTheFreeSpace_IsRefusedBeforeWriting()
    {
        var path = SharedViews(200, 1 << 18);
        var folder = Path.GetDirectoryName(path)!;
        var output = Path.Combine(folder, "out.safetensors");
        File.WriteAllText(output, "previous");
        string? asked = null;
        OutputSpace.Pretend.Value = f => { asked = f; return 100L << 20; };
        try
        {
            var e = Assert.Throws<OutputSpaceException>(() => CheckpointFile.Convert(path, output));
            Assert.Equal(200L << 20, e.Needed);
            Assert.Equal(100L << 20, e.Available);
            Assert.Equal(folder, asked);
            Assert.Contains("needs 200.0 MiB", e.Message);
            Assert.Contains("has only 100.0 MiB of free space", e.Message);
            Assert.Contains("200 of its tensors view 1 shared storage(s)", e.Message);
            Assert.Contains("1.0 MiB", e.Message);
            Assert.Contains("nothing was written", e.Message);
        }
        finally
        {
            OutputSpace.Pretend.Value = null;
        }
        Assert.Equal("previous", File.ReadAllText(output));
        Assert.Equal(["out.safetensors", "shared.pt"], Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    /// <summary>The query the check relies on answers the file system's free space (compared with <c>df</c>, an independent reading).</summary>
    [Fact]
    public void FreeBytes_AgreesWithDf()
    {
        var folder = Path.GetTempPath();
        var ours = OutputSpace.FreeBytes(folder);
        Assert.NotNull(ours);
        var df = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("df", ["-B1", "--output=avail", folder])
        {
            RedirectStandardOutput = true,
        })!;
        var text = df.StandardOutput.ReadToEnd();
        df.WaitForExit();
        Assert.Equal(0, df.ExitCode);
        var theirs = long.Parse(text.Split('\n', StringSplitOptions.RemoveEmptyEntries)[1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        // Other processes write meanwhile (builds, tests beside this one): agree within 1 GiB.
        Assert.InRange(ours!.Value, theirs - (1L << 30), theirs + (1L << 30));
    }

    /// <summary>A <c>.pt</c> whose <paramref name="tensors"/> tensors each view all of one float32 storage of <paramref name="numel"/> elements (the last 2.5).</summary>
    private string SharedViews(int tensors, long numel)
    {
        var parts = new List<object> { (byte)0x80, (byte)2, OrderedDict, ')', 'R', '(' };
        for (var i = 0; i < tensors; i++)
        {
            parts.AddRange(["w" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), Rebuild, '(',
                .. Tuple("storage", FloatStorage, "0", "cpu", numel), 'Q', 0, .. Tuple(numel), .. Tuple(1), (byte)0x89, OrderedDict, ')', 'R',
                't', 'R']);
        }
        parts.AddRange(['u', '.']);
        var storage = new byte[numel * 4];
        BitConverter.GetBytes(2.5f).CopyTo(storage, 4 * (numel - 1));
        return Checkpoint(Assemble([.. parts]), "shared.pt", storage);
    }

    [Fact]
    public void Open_TensorsOnTheirOwnStorages_ShareNothing()
    {
        using var r = PyTorchReader.Open(Checkpoint(OneTensor(6, 0, [2, 3], [3, 1])));
        Assert.Equal(24, r.StoredByteLength);
        Assert.Equal(0, r.SharedStorageCount);
        Assert.Equal(0, r.TensorsOnSharedStorages);
    }

    [Fact]
    public void Open_NegativeDimensionOrStride_IsInvalidShape()
    {
        Assert.Equal("w", Expect.Fails(Checkpoint(OneTensor(6, 0, [-1], [1])), CheckpointErrorKind.InvalidShape).TensorName);
        Assert.Equal("w", Expect.Fails(Checkpoint(OneTensor(6, 5, [2], [-1]), "neg.pt"), CheckpointErrorKind.InvalidShape).TensorName);
        Assert.Equal("w", Expect.Fails(Checkpoint(OneTensor(6, 0, [2, 3], [1]), "rank.pt"), CheckpointErrorKind.InvalidShape).TensorName);
    }

    [Fact]
    public void Open_DeeplyNestedPickle_FailsCleanly()
    {
        // 100,000 nested 1-tuples: no recursion in the reader may follow them down.
        var parts = new List<object> { (byte)0x80, (byte)2, ')' };
        parts.AddRange(Enumerable.Repeat<object>((byte)0x85, 100_000));
        parts.Add('.');
        Expect.Fails(Checkpoint(Assemble([.. parts])), CheckpointErrorKind.Corrupt, "nested deeper");
        var marks = new List<object> { (byte)0x80, (byte)2 };
        marks.AddRange(Enumerable.Repeat<object>('(', 100_000));
        Expect.Fails(Checkpoint(Assemble([.. marks]), "marks.pt"), CheckpointErrorKind.Corrupt, "MARK");
    }

    [Fact]
    public void Open_StringLongerThanFile_IsCorruptWithoutAllocating()
    {
        var pkl = Assemble((byte)0x80, (byte)2, 'X', BitConverter.GetBytes(uint.MaxValue), '.');
        Expect.Fails(Checkpoint(pkl), CheckpointErrorKind.Corrupt, "bytes");
    }

    [Fact]
    public void Open_TorchScriptArchive_IsUnsupported()
    {
        Expect.Fails(Hostile("torchscript.pt"), CheckpointErrorKind.Unsupported, "TorchScript");
    }

    [Fact]
    public void Open_EntryOutsideRoot_IsUnsafePath()
    {
        var path = _dir.File("outside.pt");
        WriteZip(path, [("archive/data.pkl", OneTensor(6, 0, [6], [1])), ("archive/data/0", SixFloats), ("archive/version", "3"u8.ToArray()), ("other/evil", [1])]);
        Expect.Fails(path, CheckpointErrorKind.UnsafePath, "other/evil");
        var climb = _dir.File("climb.pt");
        WriteZip(climb, [("archive/data.pkl", OneTensor(6, 0, [6], [1])), ("archive/../../evil", [1]), ("archive/version", "3"u8.ToArray())]);
        Expect.Fails(climb, CheckpointErrorKind.UnsafePath, "archive/../../evil");
        var absolute = _dir.File("absolute.pt");
        WriteZip(absolute, [("/etc/passwd", [1])]);
        Expect.Fails(absolute, CheckpointErrorKind.UnsafePath, "/etc/passwd");
    }

    [Fact]
    public void Open_CompressedEntry_IsUnsupported()
    {
        var path = _dir.File("deflated.pt");
        WriteZip(path, [("archive/data.pkl", OneTensor(6, 0, [6], [1])), ("archive/data/0", SixFloats), ("archive/version", "3"u8.ToArray())], compress: true);
        Expect.Fails(path, CheckpointErrorKind.Unsupported, "compressed");
    }

    [Fact]
    public void Open_UnknownByteorder_IsUnsupported()
    {
        Expect.Fails(Checkpoint(OneTensor(6, 0, [6], [1]), [("0", SixFloats)], byteorder: "big"), CheckpointErrorKind.Unsupported, "'big'");
    }

    [Fact]
    public void Open_UnknownVersion_IsUnsupported()
    {
        Expect.Fails(Checkpoint(OneTensor(6, 0, [6], [1]), [("0", SixFloats)], version: "99"), CheckpointErrorKind.Unsupported, "'99'");
    }

    [Fact]
    public void Open_MissingStorageRecord_IsCorrupt()
    {
        Expect.Fails(Checkpoint(OneTensor(6, 0, [6], [1]), []), CheckpointErrorKind.Corrupt, "archive/data/0");
    }

    [Fact]
    public void Open_TruncatedZip_IsRejected()
    {
        var good = Checkpoint(OneTensor(6, 0, [6], [1]));
        var bytes = File.ReadAllBytes(good);
        var cut = _dir.File("cut.pt");
        File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);
        Expect.Fails(cut, CheckpointErrorKind.Corrupt, "end-of-central-directory");
        var tiny = _dir.File("tiny.pt");
        File.WriteAllBytes(tiny, "PK"u8.ToArray());
        Expect.Fails(tiny, CheckpointErrorKind.TooShort);
    }

    // A legacy file built by hand: magic, protocol, sys info, {"w": tensor}, the key list, then the storage record.
    private static byte[] Legacy(long declaredNumel, long recordedNumel, int dataBytes, object[]? persistentId = null)
    {
        var magic = Assemble((byte)0x80, (byte)2, (byte)0x8a, (byte)10, Convert.FromHexString("6cfc9c46f9206aa85019"), '.');
        var protocol = Assemble((byte)0x80, (byte)2, 1001, '.');
        var sysInfo = Assemble((byte)0x80, (byte)2, '}', '(', "protocol_version", 1001, "little_endian", (byte)0x88, 'u', '.');
        var obj = OneTensor(declaredNumel, 0, [2], [1], persistentId ?? Tuple("storage", FloatStorage, "0", "cpu", declaredNumel, 'N'));
        var keys = Assemble((byte)0x80, (byte)2, ']', '(', "0", 'e', '.');
        return [.. magic, .. protocol, .. sysInfo, .. obj, .. keys, .. BitConverter.GetBytes(recordedNumel), .. new byte[dataBytes]];
    }

    [Fact]
    public void Open_LegacyHandBuilt_Reads()
    {
        var path = _dir.File("legacy.pt");
        File.WriteAllBytes(path, Legacy(2, 2, 8));
        using var r = PyTorchReader.Open(path);
        Assert.Equal(PyTorchContainer.Legacy, r.Container);
        Assert.Equal(new Shape(2), r.Tensors.Single().Shape);
    }

    [Fact]
    public void Open_LegacyStorageCountDiffersFromDeclared_IsLengthMismatch()
    {
        var path = _dir.File("legacy-count.pt");
        File.WriteAllBytes(path, Legacy(2, 3, 12));
        Expect.Fails(path, CheckpointErrorKind.LengthMismatch, "storage '0'");
    }

    [Fact]
    public void Open_LegacyStoragePastEndOfFile_IsOutOfBounds()
    {
        var path = _dir.File("legacy-cut.pt");
        File.WriteAllBytes(path, Legacy(2, 2, 7));
        Expect.Fails(path, CheckpointErrorKind.OutOfBounds, "storage '0'");
    }

    [Fact]
    public void Open_LegacyTrailingBytes_IsGapInData()
    {
        var path = _dir.File("legacy-trailing.pt");
        File.WriteAllBytes(path, Legacy(2, 2, 9));
        Expect.Fails(path, CheckpointErrorKind.GapInData);
    }

    [Fact]
    public void Open_LegacyPersistentIdOfZipForm_IsForbidden()
    {
        var path = _dir.File("legacy-pid.pt");
        File.WriteAllBytes(path, Legacy(2, 2, 8, Tuple("storage", FloatStorage, "0", "cpu", 2)));
        Expect.Fails(path, CheckpointErrorKind.ForbiddenOpcode, "persistent id");
    }

    private static object[] FloatTensor(string storage) =>
        [Rebuild, '(', .. Tuple("storage", FloatStorage, storage, "cpu", 4L), 'Q', 0L, .. Tuple(4L), .. Tuple(1L), (byte)0x89, OrderedDict, ')', 'R', 't', 'R'];

    [Fact]
    public void Open_TensorsBesideANestedDictionary_AreACandidateNotDropped()
    {
        // {"w": tensor, "epoch": 3, "sub": {"v": tensor}}: "w" sits beside a number and a nested state dict.
        var pkl = Assemble([(byte)0x80, (byte)2, '}', '(', "w", .. FloatTensor("0"), "epoch", 3, "sub", '}', '(', "v", .. FloatTensor("1"), 'u', 'u', '.']);
        var path = Checkpoint(pkl, [("0", new byte[16]), ("1", new byte[16])]);
        using (var reader = PyTorchReader.Open(path))
        {
            Assert.Equal(["", "sub"], reader.TensorDictionaries.Select(d => d.KeyPath));
            Assert.Contains("beside other entries", reader.SelectionReason, StringComparison.Ordinal);
        }
        using (var top = PyTorchReader.Open(path, ""))
        {
            Assert.Equal(["w"], top.Tensors.Select(t => t.Name));
            Assert.Equal("3", top.Metadata["epoch"]);
        }
        using (var sub = PyTorchReader.Open(path, "sub"))
        {
            Assert.Equal(["v"], sub.Tensors.Select(t => t.Name));
        }
    }

    [Fact]
    public void Open_LegacyFixtureTruncated_IsOutOfBounds()
    {
        var bytes = File.ReadAllBytes(Path.Combine(Fixtures.PyTorch, "legacy.pt"));
        var path = _dir.File("legacy-fixture-cut.pt");
        File.WriteAllBytes(path, bytes[..^1]);
        Expect.Fails(path, CheckpointErrorKind.OutOfBounds);
    }

    [Fact]
    public void Open_NotACheckpoint_IsUnsupported()
    {
        var path = _dir.File("text.pt");
        File.WriteAllText(path, "hello world");
        Expect.Fails(path, CheckpointErrorKind.Unsupported);
    }
}
