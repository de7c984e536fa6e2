namespace Graft.Checkpoints;

/// <summary>
/// A tensor's name read once as a layer and a member: <c>layer1.0.conv1.weight</c> is member <c>weight</c> of layer
/// <c>layer1.0.conv1</c>. The one parser of names in Graft (state-dict names split on their last dot); a name without
/// a dot is a member of the unnamed layer <c>""</c>. Equality is ordinal on the full name.
/// </summary>
public readonly record struct TensorName
{
    // Only the position of the last dot is kept: the layer and member strings are cut when asked for, so that parsing
    // a name (done for every tensor of a header, several times) allocates nothing.
    private readonly int _dot;

    private TensorName(string full, int dot)
    {
        Full = full;
        _dot = dot;
    }

    /// <summary>The name as stored in the checkpoint.</summary>
    public string Full { get; }

    /// <summary>The layer (module path): everything before the last dot, or <c>""</c>.</summary>
    public string Layer => _dot < 0 ? "" : Full[.._dot];

    /// <summary>The member within the layer (<c>weight</c>, <c>bias</c>, <c>running_var</c> …): everything after the last dot.</summary>
    public string Member => Full[(_dot + 1)..];

    /// <summary>True when the member is the layer's <c>weight</c> (a matrix or kernel for conv/linear, a scale vector for norms).</summary>
    public bool IsLayerWeight => Full.AsSpan(_dot + 1).SequenceEqual("weight");

    /// <summary>Reads <paramref name="name"/>.</summary>
    public static TensorName Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return new TensorName(name, name.LastIndexOf('.'));
    }

    /// <summary>The layer of <paramref name="name"/> (see <see cref="Layer"/>).</summary>
    public static string LayerOf(string name) => Parse(name).Layer;

    /// <summary>The member of <paramref name="name"/> (see <see cref="Member"/>).</summary>
    public static string MemberOf(string name) => Parse(name).Member;

    /// <summary>
    /// True for members PyTorch registers as buffers, not parameters: BatchNorm's <c>running_mean</c>,
    /// <c>running_var</c> and <c>num_batches_tracked</c>, index tables (<c>relative_position_index</c>,
    /// <c>position_ids</c>) and rotary frequencies (<c>inv_freq</c>). A state dict holds both; only parameters train.
    /// </summary>
    public static bool IsBuffer(string name) => MemberOf(name) is "running_mean" or "running_var" or "num_batches_tracked"
        or "relative_position_index" or "position_ids" or "inv_freq";

    /// <inheritdoc/>
    public override string ToString() => Full;
}
