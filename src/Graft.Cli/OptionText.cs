using Graft.Checkpoints;

namespace Graft.Cli;

/// <summary>
/// What the user typed into an option, read by a library parser. The library's message names the text and what is
/// wrong; this adds the option that carried it, so a person sees <c>--rule: Tensor rule 'x': …</c>.
/// </summary>
internal static class OptionText
{
    /// <summary>
    /// A parser for a whole-number option that says what is wrong in words ("--seed: expected a whole number, got
    /// 'abc'"), where System.CommandLine's own message names a .NET type ('System.Int64').
    /// </summary>
    public static Func<System.CommandLine.Parsing.ArgumentResult, long> WholeNumber(string option, long min = long.MinValue, long max = long.MaxValue,
        string what = "a whole number") => result =>
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var value)
            && value >= min && value <= max)
        {
            return value;
        }
        result.AddError(min is long.MinValue or int.MinValue
            ? $"{option}: expected {what}, got '{text}'."
            : $"{option}: expected {what} from {min} to {max}, got '{text}'.");
        return 0;
    };

    /// <summary>Reads <paramref name="text"/> with <paramref name="parse"/>; an invalid text names <paramref name="option"/>.</summary>
    /// <exception cref="InvalidInputException">The text is invalid; the message starts with the option.</exception>
    public static T Parse<T>(string option, string text, Func<string, T> parse)
    {
        try
        {
            return parse(text);
        }
        catch (InvalidInputException e)
        {
            throw e.WithPrefix(option);
        }
    }
}
