namespace Graft.Transformers;

/// <summary>
/// What a transfer planned by role (<see cref="TransformerPlanner"/>) takes beyond the two configs: where target blocks
/// come from (<see cref="Layers"/>) and HyperCloning's symmetric noise (<see cref="CloneNoise"/>). Carried by
/// <see cref="Graft.Transfer.TransferPolicy.Transformer"/>, so the CLI and library callers pass them the same way; a
/// plan by names refuses them.
/// </summary>
public sealed record TransformerOptions
{
    /// <summary>Which source block each target block is (SOLAR slicing, identity blocks placed by hand), or null for the
    /// default placement (the source's blocks in order, identity blocks spread evenly after them).</summary>
    public LayerMap? Layers { get; init; }

    /// <summary>
    /// Symmetric noise on widened copies, as a fraction of each weight's std (0: none, the copies stay exact). Every
    /// linear layer reading a widened axis gets +N on one copy of each input and −N on its twin
    /// (<see cref="CancellingNoise"/>), drawn from <see cref="Graft.Transfer.TransferPolicy.Seed"/> and the tensor's name.
    /// </summary>
    public double CloneNoise { get; init; }
}
