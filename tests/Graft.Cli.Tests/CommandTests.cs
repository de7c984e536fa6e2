using System.Text.Json;
using Graft.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Cli.Tests;

public sealed class InspectCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    [Fact]
    public void Inspect_SafetensorsFile_ListsTensorsAndCountsParameters()
    {
        var path = _h.Save(nn.Conv2d(3, 8, 3), "conv.safetensors");
        var (code, stdout, _) = _h.Run("inspect", path);
        Assert.Equal(0, code);
        Assert.Contains("weight", stdout);
        Assert.Contains("(8, 3, 3, 3)", stdout);
        Assert.Contains("2 tensors, 224 elements", stdout); // 8·3·3·3 + 8
    }

    [Fact]
    public void Inspect_BatchNorm_SeparatesParametersFromBuffers()
    {
        // weight and bias train (16 values); running_mean, running_var and num_batches_tracked are buffers (17).
        var path = _h.Save(nn.BatchNorm2d(8), "bn.safetensors");
        var (code, stdout, stderr) = _h.Run("inspect", path);
        Assert.True(code == 0, stderr);
        Assert.Contains("5 tensors, 33 elements: 16 parameters (16 floating-point) and 17 in buffers", stdout);
        Assert.Contains("running_mean (buffer)", stdout);
        var (_, json, _) = _h.Run("inspect", path, "--json");
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(16, doc.RootElement.GetProperty("parameters").GetInt64());
        Assert.Equal(17, doc.RootElement.GetProperty("buffers").GetInt64());
    }

    [Fact]
    public void Inspect_Json_IsParseableAndComplete()
    {
        var path = _h.Save(nn.Linear(4, 2), "lin.safetensors");
        var (code, stdout, _) = _h.Run("inspect", path, "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal("safetensors", doc.RootElement.GetProperty("format").GetString());
        Assert.Equal(10, doc.RootElement.GetProperty("parameters").GetInt64());
        Assert.Equal(0, doc.RootElement.GetProperty("buffers").GetInt64());
        var tensors = doc.RootElement.GetProperty("tensorList").EnumerateArray().ToList();
        Assert.Equal(["weight", "bias"], tensors.Select(t => t.GetProperty("name").GetString()));
        Assert.Equal([2L, 4L], tensors[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
    }

    [Fact]
    public void Inspect_PyTorchFixture_Works()
    {
        var path = Path.Combine(CliHarness.RepoRoot(), "tests", "fixtures", "pytorch", "tinycnn.pth");
        var (code, stdout, stderr) = _h.Run("inspect", path);
        Assert.True(code == 0, stderr);
        Assert.Contains("pytorch", stdout);
    }

    [Fact]
    public void Inspect_MissingFile_ExitCode3NamesTheFile()
    {
        var path = _h.PathOf("nope.safetensors");
        var (code, _, stderr) = _h.Run("inspect", path);
        Assert.Equal(3, code);
        Assert.Contains(path, stderr);
        Assert.DoesNotContain("   at ", stderr); // no stack trace without --verbose
    }

    [Fact]
    public void Inspect_CorruptFile_ExitCode4NamesTheFile()
    {
        var path = _h.PathOf("bad.safetensors");
        File.WriteAllBytes(path, [0x10, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'"']);
        var (code, _, stderr) = _h.Run("inspect", path);
        Assert.Equal(4, code);
        Assert.Contains(path, stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }
}

public sealed class TransferCommandTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private (string Source, string Template) SeedCase3()
    {
        manual_seed(3);
        return (_h.Save(nn.Conv2d(3, 32, 3), "src.safetensors"), _h.Save(nn.Conv2d(6, 64, 5), "tpl.safetensors"));
    }

    [Fact]
    public void Transfer_EndToEnd_WritesOutputInTemplateShapesAndAJsonReport()
    {
        var (src, tpl) = SeedCase3();
        var srcHash = CliHarness.Hash(src);
        var tplHash = CliHarness.Hash(tpl);
        var outPath = _h.PathOf("out.safetensors");
        var reportPath = _h.PathOf("report.json");
        var (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--report", reportPath);
        Assert.True(code == 0, stderr);
        Assert.Contains("repeat cyclically and scale by 3/6", stdout); // the table gives reasons in words; the JSON has the op codes

        using (var reader = CheckpointFile.Open(outPath))
        {
            Assert.Equal(new Shape(64, 6, 5, 5), reader.Tensors.Single(t => t.Name == "weight").Shape);
        }
        using var doc = JsonDocument.Parse(File.ReadAllText(reportPath));
        var targets = doc.RootElement.GetProperty("targets").EnumerateArray().ToList();
        var w = targets.Single(t => t.GetProperty("name").GetString() == "weight");
        Assert.Equal("adapted", w.GetProperty("status").GetString());
        Assert.Equal(["in.repeat-rescale", "kernel.fit", "out.pad"], w.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("op").GetString()));
        Assert.Equal(2, doc.RootElement.GetProperty("summary").GetProperty("adapted").GetInt32());
        Assert.All(doc.RootElement.GetProperty("sources").EnumerateArray(), s => Assert.NotEmpty(s.GetProperty("usedBy").EnumerateArray()));
        // Sources untouched.
        Assert.Equal(srcHash, CliHarness.Hash(src));
        Assert.Equal(tplHash, CliHarness.Hash(tpl));
    }

    [Fact]
    public void Transfer_JsonFlag_PrintsTheReport()
    {
        var (src, tpl) = SeedCase3();
        var (code, stdout, _) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal("template", doc.RootElement.GetProperty("policy").GetProperty("newChannels").GetString());
    }

    [Fact]
    public void Transfer_KernelReinit_ReportsReinitialized()
    {
        var (src, tpl) = SeedCase3();
        var (code, stdout, _) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--kernel", "reinit", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal("reinitialised", doc.RootElement.GetProperty("targets")[0].GetProperty("status").GetString());
    }

    [Fact]
    public void Transfer_Strict_Exit5AndNothingWritten()
    {
        var (src, tpl) = SeedCase3();
        var outPath = _h.PathOf("out.safetensors");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--strict");
        Assert.Equal(5, code);
        Assert.Contains("weight", stderr);
        Assert.Contains("Nothing was written", stderr);
        Assert.False(File.Exists(outPath));
        Assert.Equal(["src.safetensors", "tpl.safetensors"], _h.Files());
    }

    [Fact]
    public void Transfer_OutputIsTheSource_Exit2AndSourceUntouched()
    {
        var (src, tpl) = SeedCase3();
        var hash = CliHarness.Hash(src);
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", src);
        Assert.Equal(2, code);
        Assert.Contains("the output is the source", stderr);
        Assert.Equal(hash, CliHarness.Hash(src));
    }

    [Fact]
    public void Transfer_TemplateNotACheckpoint_Exit4NoOutput()
    {
        var (src, _) = SeedCase3();
        var bogus = _h.PathOf("template.safetensors");
        File.WriteAllText(bogus, "hello, I am not a checkpoint");
        var outPath = _h.PathOf("out.safetensors");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", bogus, "--out", outPath);
        Assert.Equal(4, code);
        Assert.Contains(bogus, stderr);
        Assert.False(File.Exists(outPath));
    }

    [Fact]
    public void Transfer_MissingSource_Exit3()
    {
        var (_, tpl) = SeedCase3();
        var (code, _, stderr) = _h.Run("transfer", _h.PathOf("missing.safetensors"), "--into", tpl, "--out", _h.PathOf("o.safetensors"));
        Assert.Equal(3, code);
        Assert.Contains("missing.safetensors", stderr);
    }

    [Theory]
    [InlineData("--rule", "conv1")]
    [InlineData("--rule", "*:colour=red")]
    [InlineData("--kernel", "stretch")]
    [InlineData("--rule", "*:layout=conv9d")]
    public void Transfer_BadPolicyText_Exit2WithTheOffendingText(string option, string value)
    {
        var (src, tpl) = SeedCase3();
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), option, value);
        Assert.Equal(2, code);
        Assert.Contains(value.Split(':')[^1].Split('=')[^1], stderr);
        Assert.False(File.Exists(_h.PathOf("o.safetensors")));
    }

    [Fact]
    public void Transfer_RuleInWrongDirection_Exit2NamesTheTensor()
    {
        var (src, tpl) = SeedCase3();
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--rule", "weight:in-channels=sum");
        Assert.Equal(2, code);
        Assert.Contains("weight", stderr);
    }

    [Fact]
    public void Transfer_UnknownOption_Exit64()
    {
        var (src, tpl) = SeedCase3();
        var (code, _, _) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--frobnicate");
        Assert.Equal(64, code);
    }

    [Fact]
    public void Diff_ExitCodeWithATypo_Exit64NotDiffers()
    {
        var (src, tpl) = SeedCase3();
        var (code, _, _) = _h.Run("diff", src, tpl, "--exit-code", "--frobnicate");
        Assert.Equal(64, code);
    }

    [Fact]
    public void RuleHelp_ListsEveryKeyTheParserAccepts()
    {
        var (code, stdout, _) = _h.Run("transfer", "--help");
        Assert.Equal(0, code);
        var help = string.Join(" ", stdout.Split('\n').Select(l => l.Trim()));
        Assert.All(Graft.Transfer.TensorRule.Keys, k => Assert.Contains(k, help));
        Assert.Contains("structural", help);
    }

    [Fact]
    public void Transfer_IntoShardsWithAShardSize_SplitsTheOutput_AndRefusesItForASingleFile()
    {
        var (src, tpl) = SeedCase3();
        var index = _h.PathOf("out.safetensors.index.json");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", index, "--shard-size", "10KB");
        Assert.True(code == 0, stderr);
        using (var r = CheckpointFile.Open(index))
        {
            Assert.Equal(["bias", "weight"], r.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
            Assert.Equal(2, ((Graft.Checkpoints.Sharded.ShardedSafetensorsReader)r).ShardPaths.Count); // 64·6·5·5·4 bytes > 10 KB
        }
        (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("single.safetensors"), "--shard-size", "10KB");
        Assert.Equal(2, code);
        Assert.Contains("sharded output", stderr);
        Assert.DoesNotContain("single.safetensors", _h.Files());
    }

    [Fact]
    public void Transfer_PyTorchSourceIntoSafetensorsTemplate_Works()
    {
        // A .pth written by real PyTorch (tests/fixtures) carried into a TorchSharp-made template of the same net.
        var fixture = Path.Combine(CliHarness.RepoRoot(), "tests", "fixtures", "pytorch", "tinycnn.pth");
        using var reader = CheckpointFile.Open(fixture);
        var template = _h.PathOf("tpl.safetensors");
        CheckpointFile.Write(template, reader.Tensors.Select(t => TensorPayload.FromCheckpoint(reader, t)));
        var (code, stdout, stderr) = _h.Run("transfer", fixture, "--into", template, "--out", _h.PathOf("o.pt"), "--strict");
        Assert.True(code == 0, stderr);
        Assert.Contains($"{reader.Tensors.Count} copied", stdout);
        using var back = CheckpointFile.Open(_h.PathOf("o.pt"));
        Assert.Equal(reader.Tensors.Select(t => t.Name), back.Tensors.Select(t => t.Name));
    }
}

public sealed class DemoCommandTests
{
    [Fact]
    public void Demo_RunsAndVerifies()
    {
        using var h = new CliHarness();
        var (code, stdout, stderr) = h.Run("demo", "--out", h.Dir, "--quick");
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("verified.", stdout);
        Assert.True(File.Exists(h.PathOf("transferred.safetensors")));
        Assert.True(File.Exists(h.PathOf("report.json")));
    }
}

public sealed class TransferFormatsTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    [Fact]
    public void Transfer_IntoOnnxTemplate_ReplacesInitializersAndKeepsTheGraph()
    {
        var model = Path.Combine(CliHarness.RepoRoot(), "tests", "fixtures", "onnx", "tiny.onnx");
        // A "fine-tuned" source: the model's own initializers, doubled, as safetensors.
        var source = _h.PathOf("tuned.safetensors");
        using (var reader = CheckpointFile.Open(model))
        {
            CheckpointFile.Write(source, reader.Tensors.Select(t =>
            {
                using var x = TensorBridge.Read(reader, t);
                using var doubled = x * 2;
                return TensorBridge.ToPayload(t.Name, doubled);
            }).ToList());
        }
        var outPath = _h.PathOf("tuned.onnx");
        var (code, _, stderr) = _h.Run("transfer", source, "--into", model, "--out", outPath, "--strict");
        Assert.True(code == 0, stderr);
        using var before = CheckpointFile.Open(model);
        using var after = CheckpointFile.Open(outPath);
        Assert.Equal(before.Tensors.Select(t => t.Name), after.Tensors.Select(t => t.Name));
        foreach (var t in before.Tensors)
        {
            using var a = TensorBridge.Read(before, t);
            using var b = TensorBridge.Read(after, t);
            Assert.True(b.allclose(a * 2), t.Name);
        }
        Assert.True(new FileInfo(outPath).Length >= new FileInfo(model).Length - 16);
    }

    /// <summary>
    /// Issue 20's report: a PRESERVE export of a fresh ResNet-18 (1-channel stem, 10 classes) shares its 30
    /// initializers among 102 weight inputs through 72 Identity nodes; a transfer from a random ResNet-18 into it gave
    /// 40 of the 80 BatchNorm inputs another layer's values. Now every BatchNorm input holds the source's tensor of the
    /// layer it belongs to, and onnx.checker accepts the output.
    /// </summary>
    [Graft.TestSupport.OnnxExportsFact]
    public void Transfer_IntoIdentitySharedPreserveTemplate_EveryBatchNormInputHoldsItsLayersSourceValue()
    {
        var source = Graft.TestSupport.OnnxExports.File("resnet18.pt");
        var template = Graft.TestSupport.OnnxExports.File("resnet18_gray10_fresh_preserve.onnx");
        var outPath = _h.PathOf("r18_gray10.onnx");
        var (code, stdout, stderr) = _h.Run("transfer", source, "--into", template, "--out", outPath);
        Assert.True(code == 0, stdout + stderr);

        using var src = CheckpointFile.Open(source);
        using var o = Graft.Checkpoints.Onnx.OnnxReader.Open(outPath);
        byte[] Bytes(ICheckpointReader r, string name)
        {
            Assert.True(r.TryGetTensor(name, out var t), name);
            var b = new byte[t.ByteLength];
            r.ReadBytes(t, b);
            return b;
        }
        var bns = o.Graph.Nodes.Where(n => n.OpType == "BatchNormalization").ToList();
        Assert.Equal(20, bns.Count);
        string[] members = ["weight", "bias", "running_mean", "running_var"];
        foreach (var bn in bns)
        {
            var layer = bn.Inputs[1][..bn.Inputs[1].LastIndexOf('.')];
            for (var slot = 1; slot <= 4; slot++)
            {
                // The input is this layer's own tensor (named for it), stored once for it alone, equal to the source's.
                Assert.Equal($"{layer}.{members[slot - 1]}", bn.Inputs[slot]);
                Assert.Equal(bn.Inputs[slot], o.Graph.WeightOf(bn.Inputs[slot]));
                Assert.Single(o.Graph.UsesOf(bn.Inputs[slot]));
                Assert.Equal(Bytes(src, bn.Inputs[slot]), Bytes(o, bn.Inputs[slot]));
            }
        }
        Assert.DoesNotContain(o.Graph.Nodes, n => n.OpType == "Identity");

        var (check, _, err) = Graft.TestSupport.OnnxExports.Run(Graft.TestSupport.OnnxExports.Python,
            ["-c", "import sys, onnx; onnx.checker.check_model(sys.argv[1], full_check=True)", outPath], TimeSpan.FromMinutes(3));
        Assert.True(check == 0, "onnx rejected the output: " + err);
    }

    /// <summary>A template whose shared weight is also a graph output cannot be un-shared: refused, nothing written.</summary>
    [Fact]
    public void Transfer_IntoTemplateWhoseSharedWeightIsAGraphOutput_Exit5NothingWritten()
    {
        static byte[] Message(Action<Google.Protobuf.CodedOutputStream> write)
        {
            var ms = new MemoryStream();
            var c = new Google.Protobuf.CodedOutputStream(ms);
            write(c);
            c.Flush();
            return ms.ToArray();
        }
        static void Str(Google.Protobuf.CodedOutputStream c, int field, string v)
        {
            c.WriteTag(field, Google.Protobuf.WireFormat.WireType.LengthDelimited);
            c.WriteString(v);
        }
        static void Sub(Google.Protobuf.CodedOutputStream c, int field, byte[] v)
        {
            c.WriteTag(field, Google.Protobuf.WireFormat.WireType.LengthDelimited);
            c.WriteBytes(Google.Protobuf.ByteString.CopyFrom(v));
        }
        static byte[] Node(string op, string[] inputs, string output) => Message(c =>
        {
            foreach (var i in inputs)
            {
                Str(c, 1, i);
            }
            Str(c, 2, output);
            Str(c, 4, op);
        });
        var model = Message(c =>
        {
            c.WriteTag(1, Google.Protobuf.WireFormat.WireType.Varint);
            c.WriteInt64(8);
            Sub(c, 7, Message(g =>
            {
                Sub(g, 1, Node("Identity", ["W"], "V"));
                Sub(g, 1, Node("Conv", ["x", "W"], "y1"));
                Sub(g, 1, Node("Conv", ["x", "V"], "y2"));
                Sub(g, 5, Message(t =>
                {
                    t.WriteTag(1, Google.Protobuf.WireFormat.WireType.Varint);
                    t.WriteInt64(2);
                    t.WriteTag(2, Google.Protobuf.WireFormat.WireType.Varint);
                    t.WriteInt32(1);
                    Str(t, 8, "W");
                    Sub(t, 9, new byte[8]);
                }));
                foreach (var o in new[] { "y1", "y2", "V" })
                {
                    Sub(g, 12, Message(v => Str(v, 1, o)));
                }
            }));
        });
        var template = _h.PathOf("shared.onnx");
        File.WriteAllBytes(template, model);
        var source = _h.PathOf("src.safetensors");
        CheckpointFile.Write(source, [
            TensorPayload.FromBytes("W", DType.F32, new Shape([2]), BitConverter.GetBytes(1f).Concat(BitConverter.GetBytes(2f)).ToArray()),
            TensorPayload.FromBytes("V", DType.F32, new Shape([2]), BitConverter.GetBytes(3f).Concat(BitConverter.GetBytes(4f)).ToArray()),
        ]);
        var outPath = _h.PathOf("out.onnx");
        var (code, _, stderr) = _h.Run("transfer", source, "--into", template, "--out", outPath);
        Assert.Equal(5, code);
        Assert.Contains("'V'", stderr);
        Assert.Contains("graph input or output", stderr);
        Assert.False(File.Exists(outPath));
    }

    [Fact]
    public void Transfer_OnnxOutputWithoutOnnxTemplate_Exit2()
    {
        manual_seed(1);
        var src = _h.Save(nn.Linear(2, 2), "a.safetensors");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", src, "--out", _h.PathOf("o.onnx"));
        Assert.Equal(2, code);
        Assert.Contains("o.onnx: ONNX is written into a template of its own format, whose structure it keeps; ", stderr);
        Assert.Contains("a.safetensors is safetensors.", stderr);
    }
}

public sealed class PolicyOptionTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    [Fact]
    public void Transfer_PreserveFunction_WiderNetworkKeepsItsOutputs()
    {
        manual_seed(41);
        var source = nn.Sequential(("c1", nn.Conv2d(3, 4, 3, padding: 1)), ("r", nn.ReLU()), ("c2", nn.Conv2d(4, 2, 3, padding: 1)));
        var target = nn.Sequential(("c1", nn.Conv2d(3, 6, 3, padding: 1)), ("r", nn.ReLU()), ("c2", nn.Conv2d(6, 2, 3, padding: 1)));
        var src = _h.Save(source, "s.safetensors");
        var tpl = _h.Save(target, "t.safetensors");
        var outPath = _h.PathOf("o.safetensors");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--preserve-function");
        Assert.True(code == 0, stderr);
        using (var reader = CheckpointFile.Open(outPath))
        {
            StateDictCheckpoint.LoadInto(target, reader.Tensors.Select(t => TensorPayload.FromCheckpoint(reader, t)));
        }
        using var x = randn(1, 3, 5, 5);
        Assert.True(source.forward(x).allclose(target.forward(x), 1e-5, 1e-6));
    }

    [Fact]
    public void Transfer_PreserveFunction_NarrowerNetwork_Exit5NamesTheTensorAndWritesNothing()
    {
        var src = _h.Save(nn.Sequential(("c1", nn.Conv2d(3, 8, 3)), ("c2", nn.Conv2d(8, 2, 3))), "s.safetensors");
        var tpl = _h.Save(nn.Sequential(("c1", nn.Conv2d(3, 6, 3)), ("c2", nn.Conv2d(6, 2, 3))), "t.safetensors");
        var outPath = _h.PathOf("o.safetensors");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", outPath, "--preserve-function");
        // c1 shrinks 8→6, so c2 would have to drop inputs: refused (exit 5, as the README's table says for
        // --preserve-function; not 2, which is for a rule the user typed), naming the tensor that cannot keep the function.
        Assert.True(code == 5, $"exit {code}: {stderr}");
        Assert.Contains("c2.weight: inputs 8→6", stderr);
        Assert.Contains("Nothing was written", stderr);
        Assert.False(File.Exists(outPath));
        Assert.Equal(["s.safetensors", "t.safetensors"], _h.Files());
        // plan says the same before anything is read but headers.
        (code, _, stderr) = _h.Run("plan", src, "--into", tpl, "--preserve-function");
        Assert.True(code == 5, $"plan exit {code}: {stderr}");
        Assert.Contains("c2.weight: inputs 8→6", stderr);
    }

    [Fact]
    public void Transfer_PresetTimm_GrayscaleStemSummed()
    {
        manual_seed(42);
        var source = nn.Sequential(("conv1", nn.Conv2d(3, 4, 3)), ("fc", nn.Linear(4, 10)));
        var target = nn.Sequential(("conv1", nn.Conv2d(1, 4, 3)), ("fc", nn.Linear(4, 2)));
        var (code, stdout, stderr) = _h.Run("transfer", _h.Save(source, "s.safetensors"), "--into", _h.Save(target, "t.safetensors"),
            "--out", _h.PathOf("o.safetensors"), "--preset", "timm", "--json");
        Assert.True(code == 0, stderr);
        Assert.Contains("in.sum", stdout);
    }

    [Fact]
    public void Transfer_NewHead_SummaryLineSaysCompleteApartFromTheHead()
    {
        // The most ordinary transfer (another class count) reads as what it is, not as a failure; the JSON keeps the
        // strict "complete": false beside the verdict.
        manual_seed(5);
        var src = _h.Save(nn.Sequential(("conv", nn.Conv2d(3, 4, 3)), ("fc", nn.Linear(4, 10))), "s.safetensors");
        var tpl = _h.Save(nn.Sequential(("conv", nn.Conv2d(3, 4, 3)), ("fc", nn.Linear(4, 3))), "t.safetensors");
        var reportPath = _h.PathOf("r.json");
        var (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--report", reportPath);
        Assert.True(code == 0, stderr);
        Assert.Contains("Verdict: complete apart from a new head: every target tensor carried over except the classifier head (2 tensors), which keeps its init.", stdout);
        using var doc = JsonDocument.Parse(File.ReadAllText(reportPath));
        var summary = doc.RootElement.GetProperty("summary");
        Assert.Equal("complete-apart-from-new-head", summary.GetProperty("verdict").GetString());
        Assert.False(summary.GetProperty("complete").GetBoolean());
    }

    [Fact]
    public void Transfer_Table_ListsWhatChangedAndCountsPlainCopies_AllListsEvery()
    {
        // conv: same shapes (plain copies); fc: 10 -> 3 classes (adapted or kept): only fc rows need a person's eyes.
        manual_seed(5);
        var source = nn.Sequential(("conv", nn.Conv2d(3, 4, 3)), ("fc", nn.Linear(4, 10)));
        var target = nn.Sequential(("conv", nn.Conv2d(3, 4, 3)), ("fc", nn.Linear(4, 3)));
        var src = _h.Save(source, "s.safetensors");
        var tpl = _h.Save(target, "t.safetensors");
        var (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"));
        Assert.True(code == 0, stderr);
        Assert.Contains("fc.weight", stdout);
        Assert.DoesNotContain("conv.weight", stdout);
        Assert.Contains("2 tensors copied unchanged, matched by name (--all lists them).", stdout);
        Assert.Contains("2 copied", stdout); // the summary line still counts them

        (code, stdout, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--all");
        Assert.True(code == 0, stderr);
        Assert.Contains("conv.weight", stdout);
        Assert.Contains("conv.bias", stdout);
        Assert.DoesNotContain("copied unchanged", stdout);
    }

    [Fact]
    public void Transfer_RenameRule_MatchesRenamedLayers()
    {
        var source = nn.Sequential(("features", nn.Conv2d(3, 4, 3)));
        var target = nn.Sequential(("stem", nn.Conv2d(3, 4, 3)));
        var (code, stdout, stderr) = _h.Run("transfer", _h.Save(source, "s.safetensors"), "--into", _h.Save(target, "t.safetensors"),
            "--out", _h.PathOf("o.safetensors"), "--rename", "^features\\.=stem.", "--strict");
        Assert.True(code == 0, stderr);
        Assert.Contains("2 copied", stdout);
    }

    [Fact]
    public void Transfer_PresetUnknown_Exit2ListsPresets()
    {
        var src = _h.Save(nn.Linear(2, 2), "s.safetensors");
        var (code, _, stderr) = _h.Run("transfer", src, "--into", src, "--out", _h.PathOf("o.safetensors"), "--preset", "magic");
        Assert.Equal(2, code);
        Assert.Contains("timm", stderr);
    }
}
