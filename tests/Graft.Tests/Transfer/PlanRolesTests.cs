using System.Text.Json;
using Graft.Checkpoints;
using Graft.TestSupport;
using Graft.Transfer;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

/// <summary>
/// Issue 19, item 7: every plan entry carries its typed role and, when it is not carried over, its typed cause; both
/// reach the report's JSON (<c>role</c>, <c>cause</c>) and the text table (the cause beside the status).
/// </summary>
public sealed class PlanRolesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("graft-plan-roles-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TensorPayload P(string name, DType dtype, params long[] shape)
    {
        var sh = new Shape(shape);
        var bytes = new byte[sh.ElementCount * dtype.ElementSize()];
        for (int i = 0; i < bytes.Length / 4; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), dtype == DType.F32 ? (float)Math.Cos(i + name.Length) : 0f);
        }
        return TensorPayload.FromBytes(name, dtype, sh, bytes);
    }

    private static TensorPayload P(string name, params long[] shape) => P(name, DType.F32, shape);

    /// <summary>A conv + BatchNorm stem, a hidden linear layer and a classifier head of <paramref name="classes"/>.</summary>
    private static List<TensorPayload> ConvBnNet(long inChannels, long classes, bool proj) =>
    [
        P("conv1.weight", 8, inChannels, 3, 3),
        P("bn1.weight", 8), P("bn1.bias", 8), P("bn1.running_mean", 8), P("bn1.running_var", 8), P("bn1.num_batches_tracked", DType.I64),
        .. proj ? [P("proj.weight", 8, 8)] : Array.Empty<TensorPayload>(),
        P("fc.weight", classes, 8), P("fc.bias", classes),
    ];

    /// <summary>
    /// A conv + BatchNorm network into a 1-channel stem, an extra hidden layer the source lacks and a head of 5 classes
    /// instead of 10: each entry's role is what the tensor is, the carried ones have no cause, the others say why.
    /// </summary>
    [Fact]
    public void ConvBatchNormNet_WithNewHead_EntriesCarryRolesAndCauses_InPlanJsonAndTable()
    {
        string src = Path.Combine(_dir, "src.safetensors"), tpl = Path.Combine(_dir, "tpl.safetensors");
        CheckpointFile.Write(src, ConvBnNet(3, 10, proj: false));
        CheckpointFile.Write(tpl, ConvBnNet(1, 5, proj: true));
        using var s = CheckpointFile.Open(src);
        using var t = CheckpointFile.Open(tpl);
        var plan = WeightTransfer.Plan(s, t);

        var expected = new Dictionary<string, (TensorRole Role, TargetCause Cause, TargetStatus Status)>
        {
            ["conv1.weight"] = (TensorRole.ConvWeight, TargetCause.Transferred, TargetStatus.Adapted),
            ["bn1.weight"] = (TensorRole.NormScale, TargetCause.Transferred, TargetStatus.Copied),
            ["bn1.bias"] = (TensorRole.NormShift, TargetCause.Transferred, TargetStatus.Copied),
            ["bn1.running_mean"] = (TensorRole.NormMean, TargetCause.Transferred, TargetStatus.Copied),
            ["bn1.running_var"] = (TensorRole.NormVar, TargetCause.Transferred, TargetStatus.Copied),
            ["bn1.num_batches_tracked"] = (TensorRole.NormCount, TargetCause.Transferred, TargetStatus.Copied),
            ["proj.weight"] = (TensorRole.LinearWeight, TargetCause.NoSource, TargetStatus.Kept),
            ["fc.weight"] = (TensorRole.HeadWeight, TargetCause.NewHead, TargetStatus.Kept),
            ["fc.bias"] = (TensorRole.HeadBias, TargetCause.LayerNotTransferred, TargetStatus.Kept),
        };
        Assert.Equal(expected.Keys.Order(), plan.Targets.Select(e => e.Target.Name).Order());
        foreach (var e in plan.Targets)
        {
            Assert.Equal(expected[e.Target.Name], (e.Role, e.Cause, e.Status));
        }

        // The JSON: role always, cause only for what is not carried over, in the report's kebab-case words.
        using var doc = JsonDocument.Parse(plan.Report(s, t).ToJson());
        var json = doc.RootElement.GetProperty("targets").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!);
        Assert.Equal("conv-weight", json["conv1.weight"].GetProperty("role").GetString());
        Assert.False(json["conv1.weight"].TryGetProperty("cause", out _));
        Assert.Equal("norm-var", json["bn1.running_var"].GetProperty("role").GetString());
        Assert.False(json["bn1.running_var"].TryGetProperty("cause", out _));
        Assert.Equal("linear-weight", json["proj.weight"].GetProperty("role").GetString());
        Assert.Equal("no-source", json["proj.weight"].GetProperty("cause").GetString());
        Assert.Equal("head-weight", json["fc.weight"].GetProperty("role").GetString());
        Assert.Equal("new-head", json["fc.weight"].GetProperty("cause").GetString());
        Assert.Equal("head-bias", json["fc.bias"].GetProperty("role").GetString());
        Assert.Equal("layer-not-transferred", json["fc.bias"].GetProperty("cause").GetString());
    }

    /// <summary>
    /// A head of the same class count is carried over like any layer: its role still says head, and a rule that
    /// reinitialises it is the cause (<c>reinitialised</c>, spelled as the status is).
    /// </summary>
    [Fact]
    public void Head_SameClassCount_CarriedWithHeadRole_ReinitRuleIsTheCause()
    {
        string src = Path.Combine(_dir, "src.safetensors"), tpl = Path.Combine(_dir, "tpl.safetensors");
        CheckpointFile.Write(src, ConvBnNet(3, 10, proj: false));
        CheckpointFile.Write(tpl, ConvBnNet(3, 10, proj: false));
        using var s = CheckpointFile.Open(src);
        using var t = CheckpointFile.Open(tpl);

        var carried = WeightTransfer.Plan(s, t).Targets.Single(e => e.Target.Name == "fc.weight");
        Assert.Equal((TensorRole.HeadWeight, TargetCause.Transferred, TargetStatus.Copied), (carried.Role, carried.Cause, carried.Status));

        var policy = TransferPolicy.Default with { Rules = [TensorRule.Parse("fc.weight:reinit")] };
        var plan = WeightTransfer.Plan(s, t, policy);
        var reinit = plan.Targets.Single(e => e.Target.Name == "fc.weight");
        Assert.Equal((TensorRole.HeadWeight, TargetCause.Reinitialized, TargetStatus.Reinitialized), (reinit.Role, reinit.Cause, reinit.Status));
        using var doc = JsonDocument.Parse(plan.Report(s, t).ToJson());
        var fc = doc.RootElement.GetProperty("targets").EnumerateArray().Single(e => e.GetProperty("name").GetString() == "fc.weight");
        Assert.Equal("reinitialised", fc.GetProperty("cause").GetString());
        Assert.Equal("reinitialised", fc.GetProperty("status").GetString());
    }

    /// <summary>
    /// An ONNX export whose initializer names share nothing with the target (BatchNorm folded into the convolutions),
    /// matched by its graph: the roles are the target's (conv weight, the four BatchNorm vectors, the head), every
    /// entry is carried over (no cause), and a head of another class count is the one cause.
    /// </summary>
    [OnnxExportsFact]
    public void OnnxGraphMatchedSource_RolesAreTheTargets_HeadIsTheOnlyCause()
    {
        manual_seed(8);
        var net = GraphTransferTests.ResNet(2, 1, 10);
        var report = WeightTransfer.IntoModule(OnnxExports.File("resnet18_folded.onnx"), net);
        Assert.Contains(report.Notes, n => n.StartsWith("matched by structure", StringComparison.Ordinal));
        var byName = report.Targets.ToDictionary(e => e.Name);
        Assert.Equal(TensorRole.ConvWeight, byName["conv1.weight"].Role);
        Assert.Equal(TensorRole.ConvWeight, byName["layer2.0.downsample.0.weight"].Role);
        Assert.Equal(TensorRole.NormScale, byName["bn1.weight"].Role);
        Assert.Equal(TensorRole.NormShift, byName["bn1.bias"].Role);
        Assert.Equal(TensorRole.NormMean, byName["layer1.0.bn2.running_mean"].Role);
        Assert.Equal(TensorRole.NormVar, byName["layer1.0.bn2.running_var"].Role);
        Assert.Equal(TensorRole.HeadWeight, byName["fc.weight"].Role);
        Assert.Equal(TensorRole.HeadBias, byName["fc.bias"].Role);
        Assert.Equal(TargetCause.NewHead, byName["fc.weight"].Cause);
        Assert.Equal(TargetCause.LayerNotTransferred, byName["fc.bias"].Cause);
        // Everything else came from the graph-matched source.
        Assert.All(report.Targets.Where(e => !e.Name.StartsWith("fc.", StringComparison.Ordinal)),
            e => Assert.Null(e.Cause));
        using var doc = JsonDocument.Parse(report.ToJson());
        var conv1 = doc.RootElement.GetProperty("targets").EnumerateArray().Single(e => e.GetProperty("name").GetString() == "conv1.weight");
        Assert.Equal("conv-weight", conv1.GetProperty("role").GetString());
        Assert.Equal("graph", conv1.GetProperty("match").GetString());
    }
}
