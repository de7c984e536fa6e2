using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>
/// Plans the position roles of a vision transformer at another resolution: an absolute embedding's grid resampled with
/// its prefix tokens kept, a Swin relative bias table resized for its new window, a window buffer taken from the
/// template.
/// </summary>
internal sealed class PositionPlanner(PlanningContext context)
{
    /// <summary>The plan of a position tensor whose shape changes (<paramref name="role"/> is a position role).</summary>
    public TargetPlan Plan(TargetPlan basePlan, TensorRole role, TensorInfo target, TensorInfo source, TensorRule rules)
    {
        if (role == TensorRole.WindowBuffer)
        {
            return basePlan with
            {
                Status = TargetStatus.Kept, Cause = TargetCause.TemplateBuffer, Complete = true,
                Reason = $"a buffer for the new window ({source.Shape}→{target.Shape}): taken from the template, never resampled",
            };
        }
        if (CheckedChain.RefuseUncomputable(basePlan, source, target) is { } refused)
        {
            return refused;
        }
        return role == TensorRole.RelativePositionBias ? PlanTable(basePlan, source, target) : PlanEmbedding(basePlan, target, source, rules);
    }

    private static TargetPlan PlanTable(TargetPlan basePlan, TensorInfo source, TensorInfo target)
    {
        if (source.Shape.Rank != 2 || target.Shape.Rank != 2 || source.Shape[1] != target.Shape[1]
            || PositionEmbedding.WindowOfTable(source.Shape[0]) is not { } fromWindow || PositionEmbedding.WindowOfTable(target.Shape[0]) is not { } toWindow)
        {
            return CheckedChain.Refused(basePlan, TargetCause.Incompatible, $"a relative position bias table must be ((2W−1)², heads) on both sides with the same heads; got {source.Shape} and {target.Shape}");
        }
        var table = basePlan with
        {
            Status = TargetStatus.Adapted, Cause = TargetCause.Transferred, Complete = true,
            Reason = $"relative positions: window {fromWindow} → {toWindow} (table {2 * fromWindow.Height - 1}² → {2 * toWindow.Height - 1}², bicubic)",
        };
        return CheckedChain.Attach(table, () => [PositionEmbedding.ResampleRelativeBiasTable(fromWindow, toWindow)]);
    }

    private TargetPlan PlanEmbedding(TargetPlan basePlan, TensorInfo target, TensorInfo source, TensorRule rules)
    {
        if (source.Shape.Rank != 3 || target.Shape.Rank != 3 || source.Shape[0] != 1 || target.Shape[0] != 1 || source.Shape[2] != target.Shape[2])
        {
            return CheckedChain.Refused(basePlan, TargetCause.Incompatible, $"a position embedding must be (1, tokens, D) on both sides with the same D; got {source.Shape} and {target.Shape}");
        }
        long n = source.Shape[1], m = target.Shape[1];
        int? prefix = rules.PrefixTokens;
        string prefixWhy = "declared by a rule";
        if (prefix is null && (context.SourcePrefix is not null || context.TemplatePrefix is not null))
        {
            if (context.SourcePrefix != context.TemplatePrefix)
            {
                return CheckedChain.Refused(basePlan, TargetCause.Incompatible, $"the source has {context.SourcePrefix ?? 0} prefix tokens and the target {context.TemplatePrefix ?? 0}; declare prefix=N with a rule if the grids start at the same token");
            }
            prefix = context.SourcePrefix;
            prefixWhy = "from the class/distillation/register tokens";
        }
        var to = rules.Grid ?? (context.Policy.ImageSize is { } image && context.TemplatePatch is { } patch ? TryImageGrid(image, patch) : null);
        if (prefix is null)
        {
            // No token tensors: the smallest count that leaves square grids on both sides (or the declared target grid).
            prefix = Enumerable.Range(0, 9).Cast<int?>().FirstOrDefault(p =>
                (rules.SourceGrid?.Count == n - p!.Value || PatchGrid.Square(n - p!.Value) is not null)
                && (to?.Count == m - p.Value || (to is null && PatchGrid.Square(m - p.Value) is not null)));
            prefixWhy = "inferred from square grids";
        }
        if (prefix is not { } p)
        {
            return CheckedChain.Refused(basePlan, TargetCause.Incompatible, $"cannot tell the prefix tokens from the grid in {source.Shape}→{target.Shape}; declare prefix=N (and grid=HxW) with a rule");
        }
        var from = rules.SourceGrid ?? PatchGrid.Square(n - p);
        to ??= PatchGrid.Square(m - p);
        if (from is not { } f || f.Count != n - p)
        {
            return CheckedChain.Refused(basePlan, TargetCause.Incompatible, $"the source's {n - p} grid tokens are not a square grid{(rules.SourceGrid is { } sg ? $" nor {sg}" : "")}; declare source-grid=HxW with a rule");
        }
        if (to is not { } t || t.Count != m - p)
        {
            return CheckedChain.Refused(basePlan, TargetCause.Incompatible, GridMismatch(m - p, to, rules));
        }
        var mode = rules.Interpolation ?? PositionInterpolation.Bicubic;
        // Each checkpoint family's own convention: torchvision's ViTs (encoder.pos_embedding) are resampled as its
        // interpolate_embeddings does (corners aligned, no antialiasing), everything else as timm's
        // resample_abs_pos_embed (antialiased). An interpolation rule picks the mode within the convention.
        bool torchvision = TensorName.MemberOf(target.Name) == NameConventions.TorchvisionPositionEmbedding && mode != PositionInterpolation.Nearest;
        string how = mode == PositionInterpolation.Nearest ? "nearest"
            : torchvision ? $"{PolicyWords.Word(mode)}, corners aligned, not antialiased, as torchvision's interpolate_embeddings"
            : $"{PolicyWords.Word(mode)}, antialiased, as timm's resample_abs_pos_embed";
        var plan = basePlan with
        {
            Status = TargetStatus.Adapted, Cause = TargetCause.Transferred, Complete = true,
            Reason = $"pos: {f} → {t}, {p} prefix token{(p == 1 ? "" : "s")} kept ({prefixWhy}; {how})",
        };
        return CheckedChain.Attach(plan, () => [torchvision
            ? PositionEmbedding.Resample(f, t, p, mode, antialias: false, alignCorners: true)
            : PositionEmbedding.Resample(f, t, p, mode)]);
    }

    /// <summary>Why the target's grid tokens do not make the grid asked for, and what to give instead.</summary>
    private string GridMismatch(long tokens, PatchGrid? asked, TensorRule rules)
    {
        var square = PatchGrid.Square(tokens);
        string holds = $"the target's position embedding holds {tokens} grid tokens" + (square is { } sq ? $" ({sq})" : "");
        if (rules.Grid is { } g)
        {
            return $"the declared grid {g} has {g.Count} tokens, but {holds}; declare the grid it holds with grid=HxW";
        }
        if (context.Policy.ImageSize is { } image && context.TemplatePatch is { } patch)
        {
            string gives = asked is { } a ? $"gives a {a} grid ({a.Count} tokens)" : "is not a whole number of patches";
            string fix = square is { } s2 ? $"give the template's image size (--image-size {s2.Height * patch}x{s2.Width * patch})" : "declare grid=HxW with a rule";
            return $"--image-size {image.Height}x{image.Width} with {patch}-pixel patches {gives}, but {holds}; {fix}";
        }
        return $"the target's {tokens} grid tokens are not a square grid; declare grid=HxW with a rule or give the image size (--image-size)";
    }

    private static PatchGrid? TryImageGrid(PatchGrid image, long patch)
    {
        try
        {
            return PatchGrid.FromImage(image.Height, image.Width, patch);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
