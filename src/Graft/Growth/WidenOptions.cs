namespace Graft.Growth;

/// <summary>Options of a widening.</summary>
public sealed record WidenOptions
{
    /// <summary>The default: Net2WiderNet without noise (exact).</summary>
    public static WidenOptions Default { get; } = new();

    /// <summary>How new channels start.</summary>
    public WidenMethod Method { get; init; } = WidenMethod.Net2Wider;

    /// <summary>
    /// Net2WiderNet only: std of Gaussian noise added to the copied out-filters, relative to each weight's std. Breaks
    /// the symmetry between a channel and its copies; the plan then reports that the function is no longer kept exactly.
    /// </summary>
    public double Noise { get; init; }

    /// <summary>Seed of the random mapping, the noise and Kaiming draws.</summary>
    public long Seed { get; init; }

    /// <summary>Incoming weights of new channels under <see cref="WidenMethod.ZeroOutgoing"/>.</summary>
    public NewUnitInit NewUnits { get; init; } = NewUnitInit.Template;
}
