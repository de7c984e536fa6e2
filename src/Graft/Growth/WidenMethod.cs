namespace Graft.Growth;

/// <summary>How the new channels of a widened layer start.</summary>
public enum WidenMethod
{
    /// <summary>
    /// Net2WiderNet: new channels copy randomly chosen existing ones and the consumers divide each copy's inputs by the
    /// number of copies, so the sum is unchanged. New units start useful but symmetric (see <see cref="WidenOptions.Noise"/>).
    /// </summary>
    Net2Wider,
    /// <summary>
    /// New channels get fresh incoming weights and zero outgoing weights: they start silent, the old channels are
    /// untouched, and training brings them in (their outgoing weights receive gradient at once).
    /// </summary>
    ZeroOutgoing,
}
