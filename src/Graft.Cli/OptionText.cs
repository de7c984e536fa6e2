using Graft.Checkpoints;

namespace Graft.Cli;

/// <summary>
/// What the user typed into an option, read by a library parser. The library's message names the text and what is
/// wrong; this adds the option that carried it, so a person sees <c>--rule: Tensor rule 'x': …</c>.
/// </summary>
internal static class OptionText
{
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
