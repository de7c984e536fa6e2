namespace Graft.Transfer;

/// <summary>
/// A further word a policy enum member is read from (besides its kebab-case name), declared on the member itself so
/// that each enum's word table is written in one place: <c>kaiming</c> for <see cref="NewChannelRule.KaimingNormal"/>.
/// </summary>
/// <param name="word">The accepted word (compared case-insensitively).</param>
[AttributeUsage(AttributeTargets.Field, AllowMultiple = true)]
public sealed class PolicyWordAttribute(string word) : Attribute
{
    /// <summary>The accepted word.</summary>
    public string Word { get; } = word;
}
