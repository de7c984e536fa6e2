using System.Text.Json;
using Graft.Checkpoints.Onnx;
using Graft.TestSupport;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Graft.Checkpoints.Tests.Onnx;

/// <summary>
/// The graph of real exports: <c>torch.onnx.export</c> of torchvision models (made by make_onnx_exports.py, checked
/// against the PyTorch state dicts saved beside them) and ML.NET's CNTK-exported ResNet-18 (evaluated by ONNX Runtime).
/// </summary>
public sealed class OnnxExportTests
{
    private static Dictionary<string, byte[]> StateDict(string file)
    {
        using var r = CheckpointFile.Open(OnnxExports.File(file));
        return r.Tensors.Where(t => !t.Name.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToDictionary(t => t.Name, t =>
        {
            var b = new byte[t.ByteLength];
            r.ReadBytes(t, b);
            return b;
        });
    }

    private static byte[] Read(OnnxReader r, string name)
    {
        Assert.True(r.TryGetTensor(name, out var t), name);
        var b = new byte[t.ByteLength];
        r.ReadBytes(t, b);
        return b;
    }

    [OnnxExportsFact]
    public void Folded_ResNet18_ConvRolesAndResidualAdds()
    {
        using var r = OnnxReader.Open(OnnxExports.File("resnet18_folded.onnx"));
        var g = r.Graph;
        var convs = g.Nodes.Where(n => n.OpType == "Conv").ToList();
        Assert.Equal(20, convs.Count);
        Assert.DoesNotContain(g.Nodes, n => n.OpType == "BatchNormalization");
        Assert.Equal(["input"], g.GraphInputs);
        Assert.Equal(["logits"], g.GraphOutputs);
        foreach (var c in convs)
        {
            // BatchNorm folded: every conv has a weight and a bias, each used once.
            Assert.Equal(3, c.Inputs.Count);
            Assert.Equal(new WeightUse(c.Index, 1), g.ConsumerOf(c.Inputs[1]));
            Assert.Equal(new WeightUse(c.Index, 2), g.ConsumerOf(c.Inputs[2]));
            Assert.StartsWith("onnx::Conv_", c.Inputs[1], StringComparison.Ordinal);
        }
        var gemm = Assert.Single(g.Nodes, n => n.OpType == "Gemm");
        Assert.Equal("fc.weight", gemm.Inputs[1]);
        Assert.Equal(1, gemm.Int("transB", 0));
        // Eight residual adds, each joining a block's output with its shortcut (the block input or a downsample conv).
        var adds = g.Nodes.Where(n => n.OpType == "Add").ToList();
        Assert.Equal(8, adds.Count);
        foreach (var a in adds)
        {
            Assert.All(a.Inputs, i => Assert.Null(g.WeightOf(i)));
            Assert.NotEqual(g.Producer(a.Inputs[0])!.Index, g.Producer(a.Inputs[1])!.Index);
        }
        Assert.Equal(42, r.Tensors.Count);
    }

    [OnnxExportsFact]
    public void FreshPreserve_ResNet18_IdentitySharedWeightsListedPerLayerUnderTorchvisionNames()
    {
        using var r = OnnxReader.Open(OnnxExports.File("resnet18_fresh_preserve.onnx"));
        var g = r.Graph;
        Assert.Equal(72, g.Nodes.Count(n => n.OpType == "Identity"));
        // 30 initializers stored, 102 tensors listed: one per consumer, named as the state dict names them.
        var expected = StateDict("resnet18_fresh.pt");
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), r.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
        foreach (var (name, bytes) in expected)
        {
            Assert.Equal(bytes, Read(r, name));
        }
        // layer4.1.bn2.running_var is an Identity of layer4.0.bn1.weight (both all ones in a fresh model).
        Assert.Equal("layer4.0.bn1.weight", g.WeightOf("layer4.1.bn2.running_var"));
        var bn = g.Nodes[g.ConsumerOf("layer4.1.bn2.running_var")!.Value.Node];
        Assert.Equal("BatchNormalization", bn.OpType);
        Assert.Equal(4, g.ConsumerOf("layer4.1.bn2.running_var")!.Value.Slot);
        // The ones of 512 channels: weight and running_var of layer4's five BatchNorms.
        Assert.Equal(10, g.UsesOf("layer4.0.bn1.weight").Count);
        Assert.All(g.UsesOf("layer4.0.bn1.weight"), u => Assert.Equal("BatchNormalization", g.Nodes[u.Node].OpType));
    }

    [OnnxExportsFact]
    public void Preserve_RandomBatchNorm_ResNet18AndMobileNetV2_EveryTensorEqualsPyTorch()
    {
        foreach (var model in new[] { "resnet18", "mobilenet_v2" })
        {
            using var r = OnnxReader.Open(OnnxExports.File($"{model}_preserve.onnx"));
            var expected = StateDict($"{model}.pt");
            Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), r.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
            foreach (var (name, bytes) in expected)
            {
                Assert.Equal(bytes, Read(r, name));
                var use = r.Graph.ConsumerOf(name)!.Value;
                var node = r.Graph.Nodes[use.Node];
                // The role a name implies is the slot the graph shows.
                var (op, slot) = name switch
                {
                    _ when name.EndsWith("running_var", StringComparison.Ordinal) => ("BatchNormalization", 4),
                    _ when name.EndsWith("running_mean", StringComparison.Ordinal) => ("BatchNormalization", 3),
                    _ when r.Tensors.First(t => t.Name == name).Shape.Rank == 4 => ("Conv", 1),
                    _ when name.StartsWith("fc.", StringComparison.Ordinal) || name.StartsWith("classifier.", StringComparison.Ordinal)
                        => ("Gemm", name.EndsWith("weight", StringComparison.Ordinal) ? 1 : 2),
                    _ => ("BatchNormalization", name.EndsWith("weight", StringComparison.Ordinal) ? 1 : 2),
                };
                Assert.Equal((op, slot), (node.OpType, use.Slot));
            }
            Assert.All(r.Graph.Nodes.Where(n => n.OpType == "BatchNormalization"), n => Assert.Equal(1e-5f, n.Float("epsilon", float.NaN)));
        }
    }

    [OnnxExportsFact]
    public void FreshPreserve_MobileNetV2_ListedUnderTorchvisionNames()
    {
        using var r = OnnxReader.Open(OnnxExports.File("mobilenet_v2_fresh_preserve.onnx"));
        var expected = StateDict("mobilenet_v2_fresh.pt");
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), r.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
        foreach (var (name, bytes) in expected)
        {
            Assert.Equal(bytes, Read(r, name));
        }
        // Clip's scalar bounds are Constant nodes but not weights.
        var clip = r.Graph.Nodes.First(n => n.OpType == "Clip");
        Assert.Null(r.Graph.WeightOf(clip.Inputs[1]));
        Assert.Equal("Constant", r.Graph.Producer(clip.Inputs[1])!.OpType);
    }

    [OnnxExportsFact]
    public void Constants_WeightsInConstantNodes_ListedAndEqualToTheInitializersTheyReplaced()
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(OnnxExports.File("manifest.json")));
        foreach (var model in new[] { "resnet18", "mobilenet_v2" })
        {
            var moved = manifest.RootElement.GetProperty("models").GetProperty(model).GetProperty("files")
                .GetProperty($"{model}_constants.onnx").GetProperty("constant_weights").EnumerateArray().Select(e => e.GetString()!).ToList();
            Assert.NotEmpty(moved);
            using var folded = OnnxReader.Open(OnnxExports.File($"{model}_folded.onnx"));
            using var r = OnnxReader.Open(OnnxExports.File($"{model}_constants.onnx"));
            Assert.Equal(folded.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal), r.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
            foreach (var name in moved)
            {
                Assert.Equal("Constant", r.Graph.Nodes.Single(n => n.Outputs.Contains(name)).OpType);
                Assert.Null(r.Graph.Producer(name));
                Assert.Equal(name, r.Graph.WeightOf(name));
                Assert.Equal(Read(folded, name), Read(r, name));
                Assert.Equal(folded.Graph.Nodes[folded.Graph.ConsumerOf(name)!.Value.Node].OpType, r.Graph.Nodes[r.Graph.ConsumerOf(name)!.Value.Node].OpType);
            }
        }
    }

    private const string CheckAndDumpScript = """
import json, sys
import numpy as np
import onnx
from onnx import numpy_helper
onnx.checker.check_model(sys.argv[1], full_check=True)
g = onnx.load(sys.argv[1]).graph
values = {t.name: numpy_helper.to_array(t) for t in g.initializer}
out = {}
for n in g.node:
    if n.op_type in ("BatchNormalization", "Conv", "Gemm"):
        for slot, name in enumerate(n.input[1:], 1):
            out[f"{n.name}:{slot}"] = [name, float(values[name].astype(np.float64).sum()), float(np.abs(values[name]).astype(np.float64).sum())]
print(json.dumps(out))
""";

    /// <summary>
    /// Issue 20: a PRESERVE export of a fresh ResNet-18 shares 30 initializers among 102 weight inputs through 72
    /// Identity nodes. Writing the random model's state dict into it must give every layer its own values: onnx reads
    /// back, for every Conv, BatchNormalization and Gemm input, the PyTorch tensor of the name that input carries, and
    /// ONNX Runtime computes PyTorch's logits.
    /// </summary>
    [OnnxExportsFact]
    public void ReplaceInitializers_FreshPreserveResNet18_EveryLayerGetsItsOwnValuesAndComputesPyTorchLogits()
    {
        var dir = Directory.CreateTempSubdirectory("graft-unshare-").FullName;
        try
        {
            var output = Path.Combine(dir, "out.onnx");
            var state = StateDict("resnet18.pt");
            using (var template = OnnxReader.Open(OnnxExports.File("resnet18_fresh_preserve.onnx")))
            {
                OnnxWriter.ReplaceInitializers(template.Path, output,
                    template.Tensors.Select(t => TensorPayload.FromBytes(t.Name, t.DType, t.Shape, state[t.Name])));
            }
            using (var o = OnnxReader.Open(output))
            {
                Assert.DoesNotContain(o.Graph.Nodes, n => n.OpType == "Identity");
                Assert.Equal(state.Count, o.Initializers.Count);
                foreach (var (name, bytes) in state)
                {
                    Assert.Equal(bytes, Read(o, name));
                }
            }

            var (code, stdout, stderr) = OnnxExports.Run(OnnxExports.Python, ["-c", CheckAndDumpScript, output], TimeSpan.FromMinutes(3));
            Assert.True(code == 0, "onnx rejected the output: " + stderr);
            var inputs = JsonSerializer.Deserialize<Dictionary<string, JsonElement[]>>(stdout.Trim().Split('\n')[^1])!;
            Assert.Equal(80 + 20 + 2, inputs.Count);
            foreach (var (_, v) in inputs)
            {
                var name = v[0].GetString()!;
                var expected = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(state[name]).ToArray();
                Assert.Equal(expected.Sum(x => (double)x), v[1].GetDouble(), 1e-3);
                Assert.Equal(expected.Sum(x => Math.Abs((double)x)), v[2].GetDouble(), 1e-3);
            }

            using var reference = CheckpointFile.Open(OnnxExports.File("resnet18.ref.pt"));
            float[] Ref(string name)
            {
                Assert.True(reference.TryGetTensor(name, out var t));
                var b = new byte[t.ByteLength];
                reference.ReadBytes(t, b);
                return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(b).ToArray();
            }
            using var session = new InferenceSession(output);
            var x = new DenseTensor<float>(Ref("input"), [1, 3, 64, 64]);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", x)]);
            var logits = results.Single().AsTensor<float>().ToArray();
            var want = Ref("logits");
            Assert.Equal(want.Length, logits.Length);
            var scale = want.Max(Math.Abs);
            for (var i = 0; i < want.Length; i++)
            {
                Assert.True(Math.Abs(logits[i] - want[i]) <= 1e-4 * scale, $"logit {i}: ONNX Runtime {logits[i]}, PyTorch {want[i]}");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [MlNetResNet18Fact]
    public void MlNetResNet18_ConvBatchNormRolesEpsilonAndResidualAdds()
    {
        using var r = OnnxReader.Open(TestPackages.MlNetResNet18!);
        var g = r.Graph;
        Assert.Equal(["Input247"], g.GraphInputs);
        Assert.Equal(["Pooling395_Output_0"], g.GraphOutputs);
        var convs = g.Nodes.Where(n => n.OpType == "Conv").ToList();
        var bns = g.Nodes.Where(n => n.OpType == "BatchNormalization").ToList();
        Assert.Equal(22, convs.Count);
        Assert.Equal(22, bns.Count);
        Assert.Equal(9, g.Nodes.Count(n => n.OpType == "Add"));
        Assert.Equal(110, r.Tensors.Count);
        foreach (var c in convs)
        {
            Assert.Equal(2, c.Inputs.Count);
            Assert.StartsWith("Parameter", c.Inputs[1], StringComparison.Ordinal);
            Assert.Equal(new WeightUse(c.Index, 1), Assert.Single(g.UsesOf(c.Inputs[1])));
            // Each conv feeds exactly one BatchNormalization.
            Assert.Equal("BatchNormalization", Assert.Single(g.Consumers(c.Outputs[0])).OpType);
        }
        foreach (var b in bns)
        {
            Assert.Equal(1e-5f, b.Float("epsilon", float.NaN), 1e-9f);
            for (var slot = 1; slot <= 4; slot++)
            {
                Assert.Equal(new WeightUse(b.Index, slot), g.ConsumerOf(b.Inputs[slot]));
                // CNTK: scale and bias are Parameters, running mean and variance Constants.
                Assert.StartsWith(slot <= 2 ? "Parameter" : "Constant", b.Inputs[slot], StringComparison.Ordinal);
            }
            Assert.Equal(r.Tensors.First(t => t.Name == b.Inputs[1]).Shape, r.Tensors.First(t => t.Name == b.Inputs[4]).Shape);
        }
        foreach (var a in g.Nodes.Where(n => n.OpType == "Add"))
        {
            // Residual joins: both operands computed (BatchNorm or the block input's Relu), none a weight.
            Assert.All(a.Inputs, i => Assert.NotNull(g.Producer(i)));
        }
        Assert.Equal([3L, 3, 2, 2], convs[0].Ints("pads"));
    }

    [MlNetResNet18Fact]
    public void MlNetResNet18_RunsInOnnxRuntime_Gives512Features()
    {
        using var session = new InferenceSession(TestPackages.MlNetResNet18!);
        var rng = new Random(5);
        var input = new DenseTensor<float>(Enumerable.Range(0, 3 * 224 * 224).Select(_ => (float)(rng.NextDouble() * 255 - 114)).ToArray(), [1, 3, 224, 224]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("Input247", input)]);
        var output = results.Single().AsTensor<float>();
        Assert.Equal([1, 512, 1, 1], output.Dimensions.ToArray());
        Assert.All(output.ToArray(), v => Assert.True(float.IsFinite(v) && v >= 0, $"{v}"));
        Assert.Contains(output.ToArray(), v => v > 0);
    }
}
