using Graft.Checkpoints;
using Graft.TestSupport;
using Graft.Transfer;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Graft.Tests.Transfer;

/// <summary>
/// Issue 19, item 2: the target's structure from its own graph where its names reveal nothing: a live module's trace
/// (<see cref="WeightTransfer.IntoModule(string, nn.Module, TransferPolicy?, IReadOnlyList{long}?, string?)"/>) and an
/// ONNX template's graph. Checked against ONNX Runtime on the source file and PyTorch's reference outputs.
/// </summary>
public class TargetStructureTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;

    /// <summary>
    /// A basic block whose names say nothing and whose module order misleads: the projection shortcut (<c>p</c>, <c>q</c>)
    /// is declared before the main path (<c>a</c>…<c>d</c>), so in state-dict order it comes first, and no name says
    /// "downsample". Computes torchvision's BasicBlock.
    /// </summary>
    private sealed class OddBlock : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor>? p, q;
        private readonly nn.Module<Tensor, Tensor> a, b, c, d;

        public OddBlock(long inC, long outC, long stride) : base(nameof(OddBlock))
        {
            if (stride != 1 || inC != outC)
            {
                p = nn.Conv2d(inC, outC, 1, stride: stride, bias: false);
                q = nn.BatchNorm2d(outC);
            }
            a = nn.Conv2d(inC, outC, 3, stride: stride, padding: 1, bias: false);
            b = nn.BatchNorm2d(outC);
            c = nn.Conv2d(outC, outC, 3, padding: 1, bias: false);
            d = nn.BatchNorm2d(outC);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var y = d.call(c.call(nn.functional.relu(b.call(a.call(x)))));
            var s = p is null ? x : q!.call(p.call(x));
            return nn.functional.relu(y + s);
        }
    }

    /// <summary>ResNet-18's computation under odd names: stem <c>z</c>/<c>y</c>, blocks <c>w.0</c>…<c>w.7</c>, head <c>v</c>.</summary>
    private sealed class OddResNet : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> z, y, x, w, u, v;

        public OddResNet(long classes) : base(nameof(OddResNet))
        {
            z = nn.Conv2d(3, 64, 7, stride: 2, padding: 3, bias: false);
            y = nn.BatchNorm2d(64);
            x = nn.MaxPool2d(3, stride: 2, padding: 1);
            var blocks = new List<(string, nn.Module<Tensor, Tensor>)>();
            long ch = 64;
            foreach (var (outC, stride) in new[] { (64L, 1L), (64L, 1L), (128L, 2L), (128L, 1L), (256L, 2L), (256L, 1L), (512L, 2L), (512L, 1L) })
            {
                blocks.Add(($"{blocks.Count}", new OddBlock(ch, outC, stride)));
                ch = outC;
            }
            w = nn.Sequential(blocks.ToArray());
            u = nn.AdaptiveAvgPool2d(1);
            v = nn.Linear(512, classes);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) =>
            v.call(u.call(w.call(x.call(nn.functional.relu(y.call(z.call(input)))))).flatten(1));
    }

    [OnnxExportsFact]
    public void OddNamedModule_NamesAloneRefuseLayers_TheTracePairsEveryLayer_LogitsEqualOnnxRuntimeAndPyTorch()
    {
        var onnx = OnnxExports.File("resnet18_folded.onnx");
        using var refs = CheckpointFile.Open(OnnxExports.File("resnet18.ref.pt"));
        var input = GraphTransferTests.Read(refs, "input");
        manual_seed(11);
        var net = new OddResNet(1000);
        Assert.Equal("w.2.p.weight", net.state_dict().Keys.First(k => k.StartsWith("w.2.", StringComparison.Ordinal))); // shortcut first

        // Names and shapes alone: the shortcut's place is misread, layers are refused (the plan keeps their init).
        using (var source = CheckpointFile.Open(onnx))
        using (var template = StateDictCheckpoint.FromModule(net, "<odd>"))
        {
            var byNames = WeightTransfer.Plan(source, template);
            var kept = byNames.Targets.Where(t => t.Status == TargetStatus.Kept && t.Target.Name.EndsWith(".weight", StringComparison.Ordinal)).Select(t => t.Target.Name).ToList();
            output.WriteLine($"names alone: {kept.Count} weights kept, e.g. {string.Join(", ", kept.Take(4))}");
            Assert.NotEmpty(kept);
            Assert.Contains(byNames.Notes, n => n.Contains("refused", StringComparison.Ordinal));
        }

        // The live module: its trace gives the real data flow (shortcut into each join), every layer paired.
        var report = WeightTransfer.IntoModule(onnx, net);
        foreach (var n in report.Notes.Where(n => n.StartsWith("matched", StringComparison.Ordinal) || n.Contains("w.2.", StringComparison.Ordinal)))
        {
            output.WriteLine(n);
        }
        Assert.Contains(report.Notes, n => n.StartsWith("matched by structure", StringComparison.Ordinal) && n.Contains("a trace of the target module", StringComparison.Ordinal));
        // The shortcut declared first pairs with the source's projection (torch.onnx names its node after the module).
        Assert.Contains(report.Notes, n => n.StartsWith("pair: w.2.p ←", StringComparison.Ordinal) && n.Contains("/layer2.0/downsample/", StringComparison.Ordinal));
        Assert.Contains(report.Notes, n => n.StartsWith("pair: w.2.a ←", StringComparison.Ordinal) && n.Contains("/layer2.0/conv1/", StringComparison.Ordinal));
        Assert.DoesNotContain(report.Targets, t => t.Status == TargetStatus.Kept);
        net.eval();
        using var _ = no_grad();
        var y = GraphTransferTests.Values(net.call(input));
        var metrics = new Metrics(output);
        Assert.True(metrics.MaxRelative(y, GraphTransferTests.OnnxRuntime(onnx, input), "odd-named module ← resnet18 folded: logits against ONNX Runtime") <= Tolerance);
        var exportRounding = metrics.MaxRelative(GraphTransferTests.OnnxRuntime(onnx, input), GraphTransferTests.Values(GraphTransferTests.Read(refs, "logits")), "ONNX Runtime against PyTorch");
        Assert.True(metrics.MaxRelative(y, GraphTransferTests.Values(GraphTransferTests.Read(refs, "logits")), "odd-named module: logits against PyTorch") <= Tolerance + exportRounding);
    }

    [Fact]
    public void Trace_SeesJoinsThroughInPlaceOperations_AndFunctionalReluFlatten()
    {
        manual_seed(12);
        var net = new OddResNet(10);
        using var sd = StateDictCheckpoint.FromModule(net, "<odd>");
        FlowTracer.Trace(net, [1, 3, 64, 64], sd.Tensors); // JIT
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        var graph = FlowTracer.Trace(net, [1, 3, 64, 64], sd.Tensors);
        var used = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - cpu;
        output.WriteLine($"trace of a ResNet-18 at 64×64: {sw.Elapsed.TotalMilliseconds:F0} ms wall, {used.TotalMilliseconds:F0} ms process CPU, {graph.Nodes.Count} nodes; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        var s = NetStructure.FromGraph(graph, "trace");
        Assert.Equal(21, s.Units.Count); // 20 convolutions (3 projections) and the head
        Assert.NotNull(s.Stages);
        Assert.Equal([2, 2, 2, 2], s.Stages!.Select(st => st.Count));
        Assert.Equal(["w.2.p", "w.4.p", "w.6.p"], s.Stages.SelectMany(st => st).SelectMany(b => b.Shortcut).Select(u => u.Name));
        Assert.All(s.Units.Where(u => u.Kind == UnitKind.Conv), u => Assert.NotNull(u.Norm));
        Assert.Equal("w.2.q.num_batches_tracked", s.Units.Single(u => u.Name == "w.2.p").Norm!.Count);
        Assert.Equal("v", s.After.Single().Name);
        Assert.True(net.training); // the trace restores the training mode
    }

    /// <summary>
    /// An ONNX template whose initializers say nothing (<c>onnx::Conv_193</c>, BatchNorm folded into biased convs), filled
    /// from the PRESERVE export (BatchNorm nodes, PyTorch names): the template's graph gives its structure, the source's
    /// BatchNorms are folded into the template's convs, and ONNX Runtime on the output computes PyTorch's logits.
    /// </summary>
    [OnnxExportsFact]
    public void OnnxTemplate_StructureFromItsGraph_FoldsTheSourceBatchNorms_OutputEqualsPyTorch()
    {
        var dir = Directory.CreateTempSubdirectory("graft-onnx-template-");
        try
        {
            var outPath = Path.Combine(dir.FullName, "out.onnx");
            var report = WeightTransfer.Files(OnnxExports.File("resnet18_preserve.onnx"), OnnxExports.File("resnet18_folded.onnx"), outPath);
            Assert.Contains(report.Notes, n => n.StartsWith("matched by structure", StringComparison.Ordinal) && n.Contains("the template's ONNX graph", StringComparison.Ordinal));
            Assert.Contains(report.Notes, n => n.Contains("folded into the weight and bias", StringComparison.Ordinal));
            Assert.DoesNotContain(report.Targets, t => t.Status == TargetStatus.Kept);
            using var refs = CheckpointFile.Open(OnnxExports.File("resnet18.ref.pt"));
            var input = GraphTransferTests.Read(refs, "input");
            var metrics = new Metrics(output);
            var y = GraphTransferTests.OnnxRuntime(outPath, input);
            Assert.True(metrics.MaxRelative(y, GraphTransferTests.OnnxRuntime(OnnxExports.File("resnet18_preserve.onnx"), input), "output ONNX against the source ONNX (ONNX Runtime)") <= Tolerance);
            Assert.True(metrics.MaxRelative(y, GraphTransferTests.Values(GraphTransferTests.Read(refs, "logits")), "output ONNX against PyTorch") <= Tolerance);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}

/// <summary>
/// Two ways to compare a float32 result with a reference, both failing on NaN or infinity: max |a − e| / max |e| (the
/// worst element against the largest value) and ‖a − e‖₂ / ‖e‖₂ (relative error of the whole tensor in the L2 norm).
/// </summary>
internal sealed class Metrics(ITestOutputHelper output)
{
    public double MaxRelative(float[] actual, float[] expected, string what) => Both(actual, Array.ConvertAll(expected, f => (double)f), what).Max;

    public (double Max, double L2) Both(float[] actual, double[] expected, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, scale = 0, d2 = 0, e2 = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(float.IsFinite(actual[i]) && double.IsFinite(expected[i]), $"{what}: non-finite value at {i} ({actual[i]} vs {expected[i]})");
            var d = actual[i] - expected[i];
            diff = Math.Max(diff, Math.Abs(d));
            scale = Math.Max(scale, Math.Abs(expected[i]));
            d2 += d * d;
            e2 += expected[i] * expected[i];
        }
        Assert.True(scale > 0, $"{what}: the reference is all zeros");
        var (max, l2) = (diff / scale, Math.Sqrt(d2 / e2));
        output.WriteLine($"{what}: max |Δ|/max |ref| {max:G3}, ‖Δ‖₂/‖ref‖₂ {l2:G3}");
        return (max, l2);
    }
}
