using System.Text.RegularExpressions;
using Graft.Checkpoints;

using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>
/// The words of policy rules, as the CLI and the JSON report spell them: the kebab-case enum names
/// (<c>largest-l2</c>, <c>repeat-rescale</c>), plus the words an enum member declares with <see cref="PolicyWordAttribute"/>.
/// </summary>
public static class PolicyWords
{
    /// <summary>
    /// The word for <paramref name="value"/>, the one the JSON report writes: the name its
    /// <see cref="System.Text.Json.Serialization.JsonStringEnumMemberNameAttribute"/> gives, else the kebab-case name.
    /// </summary>
    public static string Word<T>(T value) where T : struct, Enum =>
        WordTable<T>.Primary.TryGetValue(value, out var word) ? word : System.Text.Json.JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    /// <summary>Reads a policy word, case-insensitively.</summary>
    /// <param name="text">The word.</param>
    /// <param name="what">Names the option or key in the error message.</param>
    /// <exception cref="InvalidInputException">Not one of the words; the message lists them.</exception>
    public static T Parse<T>(string text, string what) where T : struct, Enum
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var (word, value) in WordTable<T>.Words)
        {
            if (string.Equals(word, text, StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }
        throw new InvalidInputException($"{what}: '{text}' is not one of {string.Join(", ", Enum.GetValues<T>().Select(Word))}.");
    }

    /// <summary>One enum's words: each member's kebab-case name, then the words its <see cref="PolicyWordAttribute"/>s add.</summary>
    private static class WordTable<T> where T : struct, Enum
    {
        /// <summary>Each member's word as the JSON writes it (looked up once per enum, not per row of a table).</summary>
        public static readonly Dictionary<T, string> Primary = Enum.GetValues<T>().Distinct().ToDictionary(v => v, v =>
            typeof(T).GetField(v.ToString())?.GetCustomAttributes(typeof(System.Text.Json.Serialization.JsonStringEnumMemberNameAttribute), false)
                is [System.Text.Json.Serialization.JsonStringEnumMemberNameAttribute named]
                ? named.Name
                : System.Text.Json.JsonNamingPolicy.KebabCaseLower.ConvertName(v.ToString()));

        public static readonly (string Word, T Value)[] Words = Enum.GetValues<T>().Select(v => (Primary[v], v))
            .Concat(Enum.GetValues<T>().SelectMany(v => typeof(T).GetField(v.ToString())!.GetCustomAttributes(typeof(PolicyWordAttribute), false)
                .Cast<PolicyWordAttribute>().Select(a => (a.Word, v))))
            .ToArray();
    }
}
