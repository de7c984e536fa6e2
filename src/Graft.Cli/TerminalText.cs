using System.Text;

namespace Graft.Cli;

/// <summary>
/// The one place that makes text from a checkpoint (tensor names, metadata, paths, error messages naming them) safe to
/// print on a terminal. A name such as <c>"\x1b]0;owned\x07\x1b[2J"</c> would otherwise retitle the window and clear the
/// screen; a newline would forge extra lines. JSON output does not come through here: its serializer escapes them.
/// </summary>
internal static class TerminalText
{
    /// <summary>
    /// Replaces every control character (C0, DEL, C1) and every bidirectional override with a visible escape
    /// (<c>\n</c>, <c>\t</c>, <c>\x1b</c>, <c>\u202e</c>); other text is returned unchanged (the same instance).
    /// </summary>
    public static string Escape(string? text)
    {
        if (text is null)
        {
            return "";
        }
        int i = 0;
        while (i < text.Length && !NeedsEscape(text[i]))
        {
            i++;
        }
        if (i == text.Length)
        {
            return text;
        }
        var sb = new StringBuilder(text.Length + 16).Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (!NeedsEscape(c))
            {
                sb.Append(c);
                continue;
            }
            _ = c switch
            {
                '\n' => sb.Append("\\n"),
                '\r' => sb.Append("\\r"),
                '\t' => sb.Append("\\t"),
                <= '\u00ff' => sb.Append("\\x").Append(((int)c).ToString("x2", System.Globalization.CultureInfo.InvariantCulture)),
                _ => sb.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture)),
            };
        }
        return sb.ToString();
    }

    /// <summary>
    /// Escapes a multi-line text (a stack trace) line by line: its own line breaks stay, every other control character
    /// is escaped.
    /// </summary>
    public static string EscapeLines(string text) =>
        string.Join(Environment.NewLine, text.ReplaceLineEndings("\n").Split('\n').Select(Escape));

    /// <summary>Control characters, and the bidirectional formatting characters that reorder what a terminal shows.</summary>
    private static bool NeedsEscape(char c) =>
        char.IsControl(c) || c is '\u061c' or '\u200e' or '\u200f' or (>= '\u202a' and <= '\u202e') or (>= '\u2066' and <= '\u2069');
}
