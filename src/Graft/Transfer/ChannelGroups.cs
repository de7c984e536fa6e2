using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// What is known about channel dependencies in a target network: the groups, and the layers whose dependencies are
/// unknown (with the reason), which fall back to first-n so that nothing inconsistent is produced silently.
/// </summary>
/// <param name="Groups">Known groups.</param>
/// <param name="Unknown">Layers (producers) whose channels reach something that could not be traced, with why.</param>
/// <param name="Origin">Where the groups came from, for the report.</param>
public sealed record ChannelGroups(IReadOnlyList<ChannelGroup> Groups, IReadOnlyDictionary<string, string> Unknown, ChannelGroupOrigin Origin)
{
    /// <summary>No dependency information at all.</summary>
    public static ChannelGroups None { get; } = new([], new Dictionary<string, string>(), ChannelGroupOrigin.None);

    /// <summary>Groups declared by a user (CLI <c>--group</c>, or code).</summary>
    public static ChannelGroups Declared(IEnumerable<ChannelGroup> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        return new ChannelGroups(groups.ToList(), new Dictionary<string, string>(), ChannelGroupOrigin.Declared);
    }
}
