using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// What a tensor is in its network, assigned once from whichever evidence there is (names and shapes of a state dict,
/// the node and input slot an ONNX weight feeds) and used by the planning code instead of name literals
/// (DESIGN.md, "Knowing what a tensor is").
/// </summary>
public enum TensorRole
{
    /// <summary>Nothing told what the tensor is.</summary>
    Unknown,
    /// <summary>A convolution kernel (out, in/groups, k…).</summary>
    ConvWeight,
    /// <summary>A convolution's bias (out).</summary>
    ConvBias,
    /// <summary>A BatchNorm scale γ (C).</summary>
    NormScale,
    /// <summary>A BatchNorm shift β (C).</summary>
    NormShift,
    /// <summary>A BatchNorm running mean (C).</summary>
    NormMean,
    /// <summary>A BatchNorm running variance (C).</summary>
    NormVar,
    /// <summary>A BatchNorm's count of batches seen (a scalar).</summary>
    NormCount,
    /// <summary>A linear (fully connected) weight (out, in).</summary>
    LinearWeight,
    /// <summary>A linear layer's bias (out).</summary>
    LinearBias,
    /// <summary>The classifier head's weight: the network's last linear layer.</summary>
    HeadWeight,
    /// <summary>The classifier head's bias.</summary>
    HeadBias,
    /// <summary>An absolute position embedding.</summary>
    PositionEmbedding,
    /// <summary>The per-channel scale of a layer without running statistics (LayerNorm, GroupNorm; rank ≤ 1).</summary>
    ChannelScale,
    /// <summary>The bias of a layer without a weight of rank ≥ 2 (a LayerNorm or GroupNorm shift).</summary>
    ChannelShift,
    /// <summary>A Swin relative position bias table ((2W−1)², heads).</summary>
    RelativePositionBias,
    /// <summary>A buffer the model computes for its own window size (Swin's relative position index).</summary>
    WindowBuffer,
}

/// <summary>A tensor's role and the evidence it was read from (for the plan).</summary>
/// <param name="Role">The role.</param>
/// <param name="Evidence">What told it: <c>name 'bn1.running_var', rank 1</c>, <c>Conv node 'Conv_12', input W</c>.</param>
public readonly record struct RoleEvidence(TensorRole Role, string Evidence);

/// <summary>Assigns roles from the evidence a checkpoint has.</summary>
public static class TensorRoles
{
    /// <summary>True for the four per-channel BatchNorm vectors (not the batch count).</summary>
    public static bool IsNormVector(this TensorRole role) => role is TensorRole.NormScale or TensorRole.NormShift or TensorRole.NormMean or TensorRole.NormVar;

    /// <summary>True for a bias or shift: of a convolution, a linear layer, a head, a BatchNorm or another norm.</summary>
    public static bool IsBias(this TensorRole role) =>
        role is TensorRole.ConvBias or TensorRole.LinearBias or TensorRole.HeadBias or TensorRole.NormShift or TensorRole.ChannelShift;

    /// <summary>
    /// True for a per-channel vector that follows its layer's out decision: a bias, a BatchNorm's statistics, and (in a
    /// layer without a weight of rank ≥ 2) a norm's scale.
    /// </summary>
    public static bool IsChannelVector(this TensorRole role) =>
        role.IsBias() || role is TensorRole.NormMean or TensorRole.NormVar or TensorRole.NormScale or TensorRole.ChannelScale;

    /// <summary>True for a scale a fresh layer starts at 1 (a norm's scale, a running variance).</summary>
    public static bool StartsAtOne(this TensorRole role) => role is TensorRole.NormScale or TensorRole.NormVar or TensorRole.ChannelScale;

    /// <summary>True for a vision transformer's positions: an absolute embedding, a relative bias table, a window buffer.</summary>
    public static bool IsPosition(this TensorRole role) => role is TensorRole.PositionEmbedding or TensorRole.RelativePositionBias or TensorRole.WindowBuffer;

    /// <summary>True for the roles of a layer with channel axes' own weight (conv, linear, head).</summary>
    public static bool IsLayerWeight(this TensorRole role) => role is TensorRole.ConvWeight or TensorRole.LinearWeight or TensorRole.HeadWeight;

    /// <summary>
    /// Roles from a state dict's names and shapes: a layer with <c>running_mean</c>/<c>running_var</c> is a BatchNorm
    /// (its <c>weight</c>/<c>bias</c> are scale/shift); a layer whose <c>weight</c> has rank ≥ 3 is a convolution; rank 2
    /// is a linear layer, the last of them the classifier head. These member names are PyTorch's and TorchSharp's, the
    /// one place they are spelled for roles.
    /// </summary>
    public static IReadOnlyDictionary<string, RoleEvidence> FromNames(IReadOnlyList<TensorInfo> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var roles = new Dictionary<string, RoleEvidence>(tensors.Count, StringComparer.Ordinal);
        var layers = LayerGroups.Of(tensors);
        var head = EmptyTransfer.LastLinearLayer(tensors);
        for (int l = 0; l < layers.Count; l++)
        {
            var members = layers.Members(l);
            bool norm = false;
            long weightRank = -1;
            foreach (var i in members)
            {
                var n = TensorName.Parse(tensors[i].Name);
                norm |= n.Member is NameConventions.RunningMean or NameConventions.RunningVar;
                if (n.IsLayerWeight)
                {
                    weightRank = tensors[i].Shape.Rank;
                }
            }
            foreach (var i in members)
            {
                var t = tensors[i];
                var n = TensorName.Parse(t.Name);
                var role = (norm, n.Member, weightRank) switch
                {
                    (true, NameConventions.Weight, _) => TensorRole.NormScale,
                    (true, NameConventions.Bias, _) => TensorRole.NormShift,
                    (true, NameConventions.RunningMean, _) => TensorRole.NormMean,
                    (true, NameConventions.RunningVar, _) => TensorRole.NormVar,
                    (true, NameConventions.BatchCount, _) => TensorRole.NormCount,
                    (false, NameConventions.Weight, >= 3) => TensorRole.ConvWeight,
                    (false, NameConventions.Bias, >= 3) => TensorRole.ConvBias,
                    (false, NameConventions.Weight, 2) => n.Layer == head ? TensorRole.HeadWeight : TensorRole.LinearWeight,
                    (false, NameConventions.Bias, 2) => n.Layer == head ? TensorRole.HeadBias : TensorRole.LinearBias,
                    (false, NameConventions.Weight, _) => TensorRole.ChannelScale,
                    (false, NameConventions.Bias, _) => TensorRole.ChannelShift,
                    _ when NameConventions.IsPositionEmbedding(t.Name) => TensorRole.PositionEmbedding,
                    _ when n.Member == NameConventions.RelativePositionBiasTable => TensorRole.RelativePositionBias,
                    _ when NameConventions.IsWindowBuffer(n.Member) => TensorRole.WindowBuffer,
                    _ => TensorRole.Unknown,
                };
                roles[t.Name] = new RoleEvidence(role, $"name '{t.Name}', rank {t.Shape.Rank}{(norm ? ", a layer with running statistics" : "")}");
            }
        }
        return roles;
    }
}
