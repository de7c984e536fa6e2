using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// The one place where tensor names of PyTorch, TorchSharp, torchvision, timm and Hugging Face checkpoints are spelled
/// for what they mean. <see cref="TensorRoles.FromNames"/> reads them into typed roles; everything after it (the
/// planner's stages) decides on roles, never on these words.
/// </summary>
internal static class NameConventions
{
    /// <summary>A layer's own weight (PyTorch's and TorchSharp's member name).</summary>
    public const string Weight = "weight";

    /// <summary>A layer's bias.</summary>
    public const string Bias = "bias";

    /// <summary>A BatchNorm's running mean.</summary>
    public const string RunningMean = "running_mean";

    /// <summary>A BatchNorm's running variance.</summary>
    public const string RunningVar = "running_var";

    /// <summary>A BatchNorm's count of batches seen.</summary>
    public const string BatchCount = "num_batches_tracked";

    /// <summary>A Swin relative position bias table, ((2W−1)², heads).</summary>
    public const string RelativePositionBiasTable = "relative_position_bias_table";

    /// <summary>torchvision's ViT position embedding, resampled as torchvision's <c>interpolate_embeddings</c> does.</summary>
    public const string TorchvisionPositionEmbedding = "pos_embedding";

    /// <summary>Vision-transformer tokens before the position grid: torchvision, timm and Hugging Face names.</summary>
    private static readonly string[] PrefixMembers = ["cls_token", "class_token", "dist_token", "distillation_token", "reg_token", "register_tokens"];

    /// <summary>Absolute position embeddings, (1, P + H·W, D): timm <c>pos_embed</c>, torchvision <c>pos_embedding</c>, Hugging Face <c>position_embeddings</c>.</summary>
    private static readonly string[] PositionMembers = ["pos_embed", TorchvisionPositionEmbedding, "position_embeddings"];

    /// <summary>Buffers a model computes for its own window size (Swin): taken from the template, never resampled.</summary>
    private static readonly string[] WindowBuffers = ["relative_position_index", "relative_coords_table"];

    /// <summary>Patch-embedding convolutions (timm, torchvision, Hugging Face ViT and CLIP): their kernel is the patch.</summary>
    private static readonly string[] PatchEmbeddingLayers = ["patch_embed.proj", "conv_proj", "patch_embeddings.projection", "patch_embedding"];

    /// <summary>True when <paramref name="layer"/> names a patch embedding, whose kernel changes are PI-resized by default (as timm).</summary>
    public static bool IsPatchEmbedding(string layer) =>
        PatchEmbeddingLayers.Any(p => layer == p || layer.EndsWith("." + p, StringComparison.Ordinal));

    /// <summary>True when <paramref name="name"/> is an absolute position embedding (see <see cref="PositionMembers"/>).</summary>
    public static bool IsPositionEmbedding(string name) => PositionMembers.Contains(TensorName.MemberOf(name));

    /// <summary>True when <paramref name="member"/> is a buffer computed for the model's own window.</summary>
    public static bool IsWindowBuffer(string member) => WindowBuffers.Contains(member);

    /// <summary>Prefix tokens a checkpoint declares through its own token tensors, or null when it has none.</summary>
    public static int? PrefixTokensOf(IEnumerable<TensorInfo> tensors)
    {
        int? count = null;
        foreach (var t in tensors.Where(t => PrefixMembers.Contains(TensorName.MemberOf(t.Name))))
        {
            // (1, R, D) register tokens count R; a class or distillation token (1, 1, D) or (1, D) counts one.
            count = (count ?? 0) + (int)(t.Shape.Rank == 3 ? t.Shape[1] : 1);
        }
        return count;
    }
}
