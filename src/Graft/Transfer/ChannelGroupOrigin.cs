namespace Graft.Transfer;

/// <summary>Where channel groups came from; the report says it (<c>declared</c>, <c>traced</c>) beside each group.</summary>
public enum ChannelGroupOrigin
{
    /// <summary>No dependency information at all.</summary>
    None,
    /// <summary>Declared by a user (CLI <c>--group</c>, or code).</summary>
    Declared,
    /// <summary>Traced from a live module (<see cref="ChannelTracer"/>).</summary>
    Traced,
}
