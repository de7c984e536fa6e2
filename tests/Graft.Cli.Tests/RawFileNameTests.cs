using System.Text.Json;
using Graft.Checkpoints;
using Graft.TestSupport;

namespace Graft.Cli.Tests;

/// <summary>
/// File and folder names whose bytes are not UTF-8 (Linux) are read and written as given, through the real <c>graft</c>
/// process (the bytes come from its command line, which an in-process run does not have): outputs byte-identical to the
/// same command under UTF-8 names, every identity check kept, and messages and JSON showing the names with <c>\xHH</c>,
/// never raw bytes or the <c>/proc/self/fd</c> path Graft reaches them through.
/// </summary>
public sealed class RawFileNameTests : IDisposable
{
    private const string Reason = "file names are bytes that need not be UTF-8 only on Linux";

    /// <summary>
    /// Shell names: D (folder "d\xe9\xff"), S (source "src\xff.safetensors"), T (template "tpl\xfe.safetensors"), O (output
    /// "out\xfe" + extension), H (a hard link "hard\xfe.safetensors"), R (report "r\xff.json").
    /// </summary>
    private const string Names = @"D=$(printf 'd\351\377'); S=$(printf 'src\377.safetensors'); T=$(printf 'tpl\376.safetensors'); O=$(printf 'out\376'); H=$(printf 'hard\376.safetensors'); R=$(printf 'r\377.json'); ";

    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private static TensorPayload F32(string name, params long[] shape)
    {
        var s = new Shape(shape);
        return TensorPayload.FromBytes(name, DType.F32, s, Enumerable.Range(0, (int)s.ElementCount * 4).Select(i => (byte)(i % 61)).ToArray());
    }

    private string Checkpoint(string name, long inputs = 3)
    {
        var path = _h.PathOf(name);
        CheckpointFile.Write(path, [F32("c1.weight", 8, inputs, 3, 3), F32("c1.bias", 8), F32("fc.weight", 4, 8)]);
        return path;
    }

    /// <summary>Runs a script (after <see cref="Names"/>) in the test's folder; fails with both streams unless it exits <paramref name="expected"/>.</summary>
    private (string Out, string Err) Sh(string script, int expected = 0)
    {
        var (code, stdout, stderr) = CliHarness.RunShell(_h.Dir, Names + script);
        Assert.True(code == expected, $"exit {code}, expected {expected}\n{stdout}\n{stderr}");
        AssertShownEscaped(stdout + stderr);
        return (stdout, stderr);
    }

    /// <summary>No raw byte (which the UTF-8 decoding of the streams turns into U+FFFD) and no /proc/self/fd path reached the user.</summary>
    private static void AssertShownEscaped(string text)
    {
        Assert.DoesNotContain('\uFFFD', text);
        Assert.DoesNotContain("/proc/self/fd", text, StringComparison.Ordinal);
    }

    /// <summary>The entries of the raw folder D as <c>ls -b</c> writes them (octal escapes), sorted.</summary>
    private string[] ListD() => List(@"""$D""");

    /// <summary>The entries of a folder (a shell word) as <c>ls -b</c> writes them (octal escapes), sorted.</summary>
    private string[] List(string folder) => Sh("ls -Ab " + folder).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal).ToArray();

    [LinuxOnlyFact(Reason)]
    public void Convert_FromAndToNamesNotUtf8_OutputsByteIdenticalToUtf8Run()
    {
        Checkpoint("src.safetensors");
        Assert.Equal(0, _h.Run("convert", _h.PathOf("src.safetensors"), _h.PathOf("ref.pt")).Code);
        Assert.Equal(0, _h.Run("convert", _h.PathOf("src.safetensors"), _h.PathOf("ref.safetensors")).Code);
        Sh(@"mkdir ""$D"" && cp src.safetensors ""$D/$S"" && cp src.safetensors ""$S""");

        // A file whose name is not UTF-8, in a folder whose name is not UTF-8, to the same; then a UTF-8 name in that
        // folder from a name that is not UTF-8 in a UTF-8 folder.
        var (first, _) = Sh(@"exec dotnet ""$0"" convert ""$D/$S"" ""$D/$O.pt""");
        Assert.Contains(@"d\xe9\xff/out\xfe.pt (pytorch)", first, StringComparison.Ordinal);
        Assert.Contains(@"from d\xe9\xff/src\xff.safetensors", first, StringComparison.Ordinal);
        var (second, _) = Sh(@"exec dotnet ""$0"" convert --json ""$S"" ""$D/plain.safetensors""");
        using (var json = JsonDocument.Parse(second))
        {
            Assert.Equal(@"d\xe9\xff/plain.safetensors", json.RootElement.GetProperty("path").GetString());
            Assert.Equal(@"./src\xff.safetensors", json.RootElement.GetProperty("source").GetString());
        }

        Sh(@"cp ""$D/$O.pt"" got.pt && cp ""$D/plain.safetensors"" got.safetensors");
        Assert.Equal(CliHarness.Hash(_h.PathOf("ref.pt")), CliHarness.Hash(_h.PathOf("got.pt")));
        Assert.Equal(CliHarness.Hash(_h.PathOf("ref.safetensors")), CliHarness.Hash(_h.PathOf("got.safetensors")));
        // Written under the names given: no U+FFFD twin, no temporary, no lock left.
        Assert.Equal([@"out\376.pt", "plain.safetensors", @"src\377.safetensors"], ListD());
        Assert.Equal([@"d\351\377", "got.pt", "got.safetensors", "ref.pt", "ref.safetensors", "src.safetensors", @"src\377.safetensors"], List("."));

        // diff's JSON names both files as given too.
        var (diff, _) = Sh(@"exec dotnet ""$0"" diff --json ""$D/$S"" src.safetensors");
        using var d = JsonDocument.Parse(diff);
        Assert.Equal(@"d\xe9\xff/src\xff.safetensors", d.RootElement.GetProperty("a").GetString());
        Assert.False(d.RootElement.GetProperty("differs").GetBoolean());
    }

    [LinuxOnlyFact(Reason)]
    public void Transfer_SourceTemplateOutputAndReportNotUtf8_OutputByteIdentical_ReportNamesThemEscaped()
    {
        Checkpoint("src.safetensors");
        Checkpoint("tpl.safetensors", inputs: 1);
        // The output's metadata records the source's and template's file names, as the user names them: the reference
        // run uses UTF-8 files named with that very spelling ("src\xff…" with a backslash), so the bytes must agree.
        File.Copy(_h.PathOf("src.safetensors"), _h.PathOf(@"src\xff.safetensors"));
        File.Copy(_h.PathOf("tpl.safetensors"), _h.PathOf(@"tpl\xfe.safetensors"));
        var (code, _, err) = _h.Run("transfer", _h.PathOf(@"src\xff.safetensors"), "--into", _h.PathOf(@"tpl\xfe.safetensors"), "--out", _h.PathOf("ref.safetensors"), "--report", _h.PathOf("ref.json"));
        Assert.True(code == 0, err);
        Sh(@"mkdir ""$D"" && cp src.safetensors ""$D/$S"" && cp tpl.safetensors ""$T""");

        var (stdout, _) = Sh(@"exec dotnet ""$0"" transfer ""$D/$S"" --into ""$T"" --out ""$D/$O.safetensors"" --report ""$D/$R""");
        Assert.Contains(@"wrote d\xe9\xff/out\xfe.safetensors", stdout, StringComparison.Ordinal);
        Sh(@"cp ""$D/$O.safetensors"" got.safetensors && cp ""$D/$R"" got.json");
        Assert.Equal(CliHarness.Hash(_h.PathOf("ref.safetensors")), CliHarness.Hash(_h.PathOf("got.safetensors")));

        var reportText = File.ReadAllText(_h.PathOf("got.json"));
        AssertShownEscaped(reportText);
        using var report = JsonDocument.Parse(reportText);
        using var reference = JsonDocument.Parse(File.ReadAllBytes(_h.PathOf("ref.json")));
        Assert.Equal(@"d\xe9\xff/src\xff.safetensors", report.RootElement.GetProperty("source").GetProperty("path").GetString());
        Assert.Equal(@"./tpl\xfe.safetensors", report.RootElement.GetProperty("template").GetProperty("path").GetString());
        Assert.Equal(@"d\xe9\xff/out\xfe.safetensors", report.RootElement.GetProperty("output").GetProperty("path").GetString());
        Assert.Equal(reference.RootElement.GetProperty("targets").GetRawText(), report.RootElement.GetProperty("targets").GetRawText());
        Assert.Equal([@"out\376.safetensors", @"r\377.json", @"src\377.safetensors"], ListD());
    }

    [LinuxOnlyFact(Reason)]
    public void Convert_ShardedIndexInAFolderNotUtf8_WrittenAndReadBack_ByteIdentical()
    {
        Checkpoint("src.safetensors");
        Directory.CreateDirectory(_h.PathOf("u"));
        Assert.Equal(0, _h.Run("convert", _h.PathOf("src.safetensors"), _h.PathOf("u/model.safetensors.index.json"), "--shard-size", "100").Code);
        Assert.Equal(0, _h.Run("convert", _h.PathOf("u/model.safetensors.index.json"), _h.PathOf("ref.safetensors")).Code);
        Sh(@"mkdir ""$D""");

        Sh(@"exec dotnet ""$0"" convert src.safetensors ""$D/model.safetensors.index.json"" --shard-size 100");
        Sh(@"exec dotnet ""$0"" convert ""$D/model.safetensors.index.json"" ""$O.safetensors""");
        Sh(@"cp ""$O.safetensors"" got.safetensors && mkdir got && cp ""$D""/model* got/");
        Assert.Equal(CliHarness.Hash(_h.PathOf("ref.safetensors")), CliHarness.Hash(_h.PathOf("got.safetensors")));
        var written = Directory.GetFiles(_h.PathOf("u")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(4, written.Length);
        Assert.Equal(written, Directory.GetFiles(_h.PathOf("got")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray());
        foreach (var name in written)
        {
            Assert.Equal(CliHarness.Hash(_h.PathOf("u/" + name)), CliHarness.Hash(_h.PathOf("got/" + name)));
        }

        // An index whose own name is not UTF-8 would have to name its shards after it inside UTF-8 JSON: refused, clearly.
        var (_, err) = Sh(@"exec dotnet ""$0"" convert src.safetensors ""$D/$O.safetensors.index.json""", expected: 2);
        Assert.Contains(@"d\xe9\xff/out\xfe.safetensors.index.json: the file name is not UTF-8", err, StringComparison.Ordinal);
    }

    [LinuxOnlyFact(Reason)]
    public void Transfer_OnnxWithExternalDataInAFolderNotUtf8_ModelAndDataByteIdentical()
    {
        var fixtures = Path.Combine(CliHarness.RepoRoot(), "tests", "fixtures", "onnx");
        Directory.CreateDirectory(_h.PathOf("u"));
        File.Copy(Path.Combine(fixtures, "external.onnx"), _h.PathOf("u/external.onnx"));
        File.Copy(Path.Combine(fixtures, "external.onnx.data"), _h.PathOf("u/external.onnx.data"));
        var (code, _, err) = _h.Run("transfer", _h.PathOf("u/external.onnx"), "--into", _h.PathOf("u/external.onnx"), "--out", _h.PathOf("u/out.onnx"));
        Assert.True(code == 0, err);
        Sh(@"mkdir ""$D"" && cp u/external.onnx u/external.onnx.data ""$D/""");

        Sh(@"exec dotnet ""$0"" transfer ""$D/external.onnx"" --into ""$D/external.onnx"" --out ""$D/out.onnx""");
        Sh(@"mkdir got && cp ""$D/out.onnx"" ""$D/out.onnx.data"" got/");
        Assert.Equal(CliHarness.Hash(_h.PathOf("u/out.onnx")), CliHarness.Hash(_h.PathOf("got/out.onnx")));
        Assert.Equal(CliHarness.Hash(_h.PathOf("u/out.onnx.data")), CliHarness.Hash(_h.PathOf("got/out.onnx.data")));
        Assert.Equal(["external.onnx", "external.onnx.data", "out.onnx", "out.onnx.data"], ListD());
    }

    [LinuxOnlyFact(Reason)]
    public void Show_PictureNamedNotUtf8_Written()
    {
        Checkpoint("src.safetensors");
        Sh(@"mkdir ""$D"" && cp src.safetensors ""$D/$S""");
        var (stdout, _) = Sh(@"exec dotnet ""$0"" show ""$D/$S"" --tensor c1.weight --out ""$D/$O.png""");
        Assert.Contains(@"wrote d\xe9\xff/out\xfe.png", stdout, StringComparison.Ordinal);
        Sh(@"cp ""$D/$O.png"" got.png");
        Assert.Equal("89504E470D0A1A0A", Convert.ToHexString(File.ReadAllBytes(_h.PathOf("got.png")).AsSpan(0, 8)));
    }

    [LinuxOnlyFact(Reason)]
    public void Outputs_NamingTheInputThroughNamesNotUtf8_RefusedBeforeWriting_InputIntact()
    {
        Checkpoint("src.safetensors");
        Sh(@"mkdir ""$D"" && cp src.safetensors ""$D/$S"" && ln ""$D/$S"" ""$H"" && ln ""$D/$S"" ""$D/p.png"" && cp src.safetensors tpl.safetensors");
        var before = ListD();
        var cases = new[]
        {
            // The same name; the same file through a folder reached by '..'; a hard link; a report that is the source.
            @"exec dotnet ""$0"" convert ""$D/$S"" ""$D/$S""",
            @"exec dotnet ""$0"" convert ""$D/$S"" ""$D/../$D/$S""",
            @"exec dotnet ""$0"" convert ""$D/$S"" ""$H""",
            @"exec dotnet ""$0"" transfer ""$D/$S"" --into tpl.safetensors --out out.safetensors --report ""$H""",
            @"exec dotnet ""$0"" show ""$D/$S"" --tensor c1.weight --out ""$D/../$D/p.png""",
        };
        foreach (var script in cases)
        {
            var (code, stdout, stderr) = CliHarness.RunShell(_h.Dir, Names + script);
            Assert.True(code == 2, $"{script}: exit {code}\n{stdout}\n{stderr}");
            AssertShownEscaped(stdout + stderr);
            Assert.Contains(@"d\xe9\xff/src\xff.safetensors", stderr, StringComparison.Ordinal);
            Sh(@"cmp src.safetensors ""$D/$S""");
            Assert.Equal(before, ListD());
            Assert.False(File.Exists(_h.PathOf("out.safetensors")));
        }
    }

    [LinuxOnlyFact(Reason)]
    public void Errors_NameTheFileEscaped_NeverRawBytes()
    {
        Sh(@"mkdir ""$D""");
        var (_, missing) = Sh(@"exec dotnet ""$0"" inspect ""$D/$S""", expected: ExitCodes.FileError);
        Assert.Contains(@"d\xe9\xff/src\xff.safetensors: no such file", missing, StringComparison.Ordinal);
        Sh(@"printf 'not a checkpoint' > ""$D/$S""");
        var (_, bad) = Sh(@"exec dotnet ""$0"" inspect ""$D/$S""", expected: ExitCodes.BadCheckpoint);
        Assert.Contains(@"d\xe9\xff/src\xff.safetensors", bad, StringComparison.Ordinal);
        Checkpoint("src.safetensors");
        var (_, folder) = Sh(@"exec dotnet ""$0"" convert src.safetensors ""$D/nodir/out.safetensors""", expected: ExitCodes.FileError);
        Assert.Contains(@"d\xe9\xff/nodir/out.safetensors: the folder d\xe9\xff/nodir does not exist", folder, StringComparison.Ordinal);
        Assert.Equal([@"src\377.safetensors"], ListD());
    }
}
