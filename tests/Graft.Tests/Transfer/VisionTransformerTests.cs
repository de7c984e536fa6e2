using Graft.Checkpoints;
using Graft.Transfer;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Tests.Transfer;

/// <summary>
/// Vision transformers across resolutions and patch sizes: torchvision, timm and Hugging Face names; the position grid
/// resampled with its prefix tokens kept; Swin tables resized and their index buffers taken from the template; patch
/// embeddings PI-resized; and, through files, the values equal to the transform applied directly.
/// </summary>
public sealed class VisionTransformerTests
{
    private const long D = 8;

    private static TensorInfo T(string name, params long[] shape)
    {
        var s = new Shape(shape);
        return new TensorInfo(name, DType.F32, s, s.ElementCount * 4);
    }

    private static TargetPlan Get(TransferPlan plan, string name) => plan.Targets.Single(t => t.Target.Name == name);

    /// <summary>torchvision's vit_b_16 layout, narrowed to D channels: image 224 (14×14) or 384 (24×24).</summary>
    private static TensorInfo[] TorchVision(long grid, long classes, long patch = 16) =>
    [
        T("class_token", 1, 1, D), T("conv_proj.weight", D, 3, patch, patch), T("conv_proj.bias", D),
        T("encoder.pos_embedding", 1, 1 + (grid * grid), D), T("encoder.layers.encoder_layer_0.ln_1.weight", D),
        T("encoder.layers.encoder_layer_0.mlp.0.weight", 4 * D, D), T("encoder.ln.weight", D),
        T("heads.head.weight", classes, D), T("heads.head.bias", classes),
    ];

    [Fact]
    public void Plan_TorchVisionVit224To384_ResamplesThePositionGridAndKeepsTheClassToken()
    {
        var plan = TransferPlanner.Plan(TorchVision(14, 1000), TorchVision(24, 10), TransferPolicy.Default);
        var pos = Get(plan, "encoder.pos_embedding");
        Assert.Equal(TargetStatus.Adapted, pos.Status);
        Assert.True(pos.Complete);
        Assert.StartsWith("pos: 14×14 → 24×24, 1 prefix token kept", pos.Reason, StringComparison.Ordinal);
        Assert.Equal(["pos.resample"], pos.Steps.Select(s => s.Op));
        Assert.Equal(TargetStatus.Copied, Get(plan, "class_token").Status);
        Assert.Equal(TargetStatus.Copied, Get(plan, "conv_proj.weight").Status);
        Assert.Equal(TargetCause.NewHead, Get(plan, "heads.head.weight").Cause);
    }

    [Fact]
    public void Plan_TimmNamesWithRegisters_CountsPrefixTokensFromTheTokenTensors()
    {
        TensorInfo[] Timm(long grid) => [T("cls_token", 1, 1, D), T("reg_token", 1, 4, D), T("pos_embed", 1, 5 + (grid * grid), D), T("patch_embed.proj.weight", D, 3, 16, 16), T("head.weight", 5, D)];
        var plan = TransferPlanner.Plan(Timm(14), Timm(8), TransferPolicy.Default);
        var pos = Get(plan, "pos_embed");
        Assert.StartsWith("pos: 14×14 → 8×8, 5 prefix tokens kept (from the class/distillation/register tokens", pos.Reason, StringComparison.Ordinal);
        Assert.Equal(new Shape(1, 5 + 64, D), pos.Transform.OutputShape(new Shape(1, 5 + 196, D)));
    }

    [Fact]
    public void Plan_HuggingFaceNames_PatchSizeChangeIsPIResizedByDefault()
    {
        TensorInfo[] Hf(long grid, long patch) =>
        [
            T("vit.embeddings.cls_token", 1, 1, D), T("vit.embeddings.position_embeddings", 1, 1 + (grid * grid), D),
            T("vit.embeddings.patch_embeddings.projection.weight", D, 3, patch, patch), T("vit.embeddings.patch_embeddings.projection.bias", D),
            T("classifier.weight", 3, D),
        ];
        // 224-pixel images at patch 16 (14×14) → the same images at patch 14 (16×16).
        var plan = TransferPlanner.Plan(Hf(14, 16), Hf(16, 14), TransferPolicy.Default);
        var proj = Get(plan, "vit.embeddings.patch_embeddings.projection.weight");
        Assert.Equal(KernelRule.PIResize, proj.Kernel!.Rule);
        Assert.Contains("patch embedding: PI-resized by default", proj.Reason, StringComparison.Ordinal);
        Assert.StartsWith("pos: 14×14 → 16×16, 1 prefix token", Get(plan, "vit.embeddings.position_embeddings").Reason, StringComparison.Ordinal);

        // An ordinary convolution keeps the default centred fit, and a rule overrides the patch default.
        var fit = TransferPlanner.Plan(Hf(14, 16), Hf(16, 14), TransferPolicy.Default with { Rules = [new TensorRule("*projection.weight") { Kernel = KernelRule.Fit }] });
        Assert.Equal(KernelRule.Fit, Get(fit, "vit.embeddings.patch_embeddings.projection.weight").Kernel!.Rule);
    }

    [Fact]
    public void Plan_NonSquareTarget_FromARuleOrTheImageSize()
    {
        TensorInfo[] source = [T("cls_token", 1, 1, D), T("pos_embed", 1, 197, D), T("patch_embed.proj.weight", D, 3, 16, 16)];
        TensorInfo[] target = [T("cls_token", 1, 1, D), T("pos_embed", 1, 1 + 192, D), T("patch_embed.proj.weight", D, 3, 16, 16)];
        var refused = Get(TransferPlanner.Plan(source, target, TransferPolicy.Default), "pos_embed");
        Assert.Equal(TargetStatus.Kept, refused.Status);
        Assert.Contains("not a square grid", refused.Reason, StringComparison.Ordinal);

        var byRule = Get(TransferPlanner.Plan(source, target, TransferPolicy.Default with { Rules = [TensorRule.Parse("pos_embed:grid=12x16")] }), "pos_embed");
        Assert.StartsWith("pos: 14×14 → 12×16", byRule.Reason, StringComparison.Ordinal);

        var byImage = Get(TransferPlanner.Plan(source, target, TransferPolicy.Default with { ImageSize = new PatchGrid(192, 256) }), "pos_embed");
        Assert.StartsWith("pos: 14×14 → 12×16", byImage.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_NoPrefixTokens_InfersZeroFromSquareGrids_AndRulesDeclare()
    {
        var plan = TransferPlanner.Plan([T("pos_embed", 1, 196, D)], [T("pos_embed", 1, 576, D)], TransferPolicy.Default);
        Assert.StartsWith("pos: 14×14 → 24×24, 0 prefix tokens kept (inferred from square grids", Get(plan, "pos_embed").Reason, StringComparison.Ordinal);
        var declared = TransferPlanner.Plan([T("pos_embed", 1, 198, D)], [T("pos_embed", 1, 578, D)],
            TransferPolicy.Default with { Rules = [TensorRule.Parse("pos_embed:prefix=2,interpolation=bilinear")] });
        Assert.StartsWith("pos: 14×14 → 24×24, 2 prefix tokens kept (declared by a rule; bilinear", Get(declared, "pos_embed").Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_SwinWindow7To12_ResizesTablesAndTakesIndexBuffersFromTheTemplate()
    {
        TensorInfo[] Swin(long w) => [T("layers.0.blocks.0.attn.relative_position_bias_table", ((2 * w) - 1) * ((2 * w) - 1), 3), T("layers.0.blocks.0.attn.relative_position_index", w * w, w * w)];
        var plan = TransferPlanner.Plan(Swin(7), Swin(12), TransferPolicy.Default with { Strict = true });
        var table = Get(plan, "layers.0.blocks.0.attn.relative_position_bias_table");
        Assert.Equal(TargetStatus.Adapted, table.Status);
        Assert.StartsWith("relative positions: window 7×7 → 12×12", table.Reason, StringComparison.Ordinal);
        var index = Get(plan, "layers.0.blocks.0.attn.relative_position_index");
        Assert.Equal(TargetStatus.Kept, index.Status);
        Assert.Equal(TargetCause.TemplateBuffer, index.Cause);
        Assert.Empty(plan.StrictViolations);
    }

    [Fact]
    public void Files_Vit224To384_PositionsEqualTheTransformAndTheTokensBitForBit()
    {
        var dir = Directory.CreateTempSubdirectory("graft-vit-");
        try
        {
            manual_seed(3);
            TensorPayload Random(TensorInfo t) => TensorBridge.ToPayload(t.Name, randn(t.Shape.ToArray()));
            var src = Path.Combine(dir.FullName, "vit224.safetensors");
            var tpl = Path.Combine(dir.FullName, "vit384.safetensors");
            var outPath = Path.Combine(dir.FullName, "out.safetensors");
            CheckpointFile.Write(src, TorchVision(14, 1000).Select(Random));
            CheckpointFile.Write(tpl, TorchVision(24, 10).Select(Random));
            var report = WeightTransfer.Files(src, tpl, outPath);
            Assert.Equal(TargetStatus.Adapted, report.Targets.Single(t => t.Name == "encoder.pos_embedding").Status);

            using var s = CheckpointFile.Open(src);
            using var o = CheckpointFile.Open(outPath);
            using var scope = NewDisposeScope();
            Tensor Read(ICheckpointReader r, string name) => TensorBridge.Read(r, r.Tensors.Single(t => t.Name == name));
            // torchvision's names: resampled as torchvision's interpolate_embeddings (corners aligned, no antialiasing).
            var expected = PositionEmbedding.Resample(new PatchGrid(14, 14), new PatchGrid(24, 24), 1, PositionInterpolation.Bicubic, antialias: false, alignCorners: true)
                .Apply(Read(s, "encoder.pos_embedding"));
            var actual = Read(o, "encoder.pos_embedding");
            Assert.True(expected.equal(actual).all().item<bool>(), "the file's position embedding is the transform's output");
            Assert.True(Read(s, "encoder.pos_embedding").narrow(1, 0, 1).equal(actual.narrow(1, 0, 1)).all().item<bool>());
            Assert.True(Read(s, "class_token").equal(Read(o, "class_token")).all().item<bool>());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Modules_SameResolution_IsTheIdentityBitForBit()
    {
        using var scope = NewDisposeScope();
        var a = new TinyVit(4);
        var b = new TinyVit(4);
        WeightTransfer.Modules(a, b);
        using var x = randn(2, 3, 16, 16);
        a.eval();
        b.eval();
        Assert.True(a.forward(x).equal(b.forward(x)).all().item<bool>());
    }

    [Fact]
    public void Modules_DoubleResolution_PositionsResampledAndTheNetworkRuns()
    {
        using var scope = NewDisposeScope();
        var small = new TinyVit(4);
        var large = new TinyVit(8);
        var report = WeightTransfer.Modules(small, large);
        Assert.Equal(TargetStatus.Adapted, report.Targets.Single(t => t.Name == "pos_embed").Status);
        var expected = PositionEmbedding.Resample(new PatchGrid(4, 4), new PatchGrid(8, 8), 1).Apply(small.pos_embed);
        Assert.True(expected.equal(large.pos_embed.detach()).all().item<bool>());
        using var y = large.forward(randn(1, 3, 32, 32));
        Assert.Equal([1L, 5], y.shape);
        TensorAssert.AllFinite(y);
    }

    /// <summary>A minimal ViT: patch embedding (4-pixel patches), class token, position embedding, a linear block, a head.</summary>
    private sealed class TinyVit : nn.Module<Tensor, Tensor>
    {
#pragma warning disable IDE1006, SA1300 // TorchSharp registers fields by name: the state dict keys are these names.
        public readonly TorchSharp.Modules.Parameter cls_token;
        public readonly TorchSharp.Modules.Parameter pos_embed;
        private readonly TorchSharp.Modules.Conv2d patch_embed;
        private readonly TorchSharp.Modules.Linear block;
        private readonly TorchSharp.Modules.Linear head;
#pragma warning restore IDE1006, SA1300

        public TinyVit(long grid) : base(nameof(TinyVit))
        {
            cls_token = nn.Parameter(randn(1, 1, 6));
            pos_embed = nn.Parameter(randn(1, 1 + (grid * grid), 6));
            patch_embed = nn.Conv2d(3, 6, 4, stride: 4);
            block = nn.Linear(6, 6);
            head = nn.Linear(6, 5);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            var p = patch_embed.forward(input).flatten(2).transpose(1, 2);
            var tokens = cat([cls_token.expand(input.shape[0], 1, 6), p], 1) + pos_embed;
            return head.forward(nn.functional.relu(block.forward(tokens)).select(1, 0));
        }
    }
}
