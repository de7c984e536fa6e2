using System.Text;

namespace Graft.Cli;

/// <summary>
/// The one place that makes text from a checkpoint (tensor names, metadata, paths, error messages naming them) safe to
/// print on a terminal. A name such as <c>"\x1b]0;owned\x07\x1b[2J"</c> would otherwise retitle the window and clear the
/// screen; a newline would forge extra lines. JSON output does not come through here: its serializer escapes them
/// (and <see cref="CliJson.Options"/> shows raw-byte paths as the user named them, as this does).
/// </summary>
internal static class TerminalText
{
    /// <summary>
    /// Replaces every control character (C0, DEL, C1), every bidirectional override, every invisible character that makes
    /// two names look alike (zero-width space and joiners, word joiner, byte-order mark, soft hyphen) and every combining
    /// mark (so an NFD name and its NFC twin differ) with a visible escape (<c>\n</c>, <c>\t</c>, <c>\x1b</c>,
    /// <c>\u202e</c>, <c>\u200b</c>, <c>\u0301</c>); other text is returned unchanged (the same instance).
    /// </summary>
    public static string Escape(string? text)
    {
        if (text is null)
        {
            return "";
        }
        // A path opened from bytes that are not UTF-8 is shown as the user named it (those bytes as \xHH), never as the
        // /proc/self/fd/N that Graft reaches it through.
        text = Graft.Checkpoints.RawPath.Display(text);
        int i = 0;
        bool ascii = true;
        while (i < text.Length && !NeedsEscape(text[i]))
        {
            ascii &= text[i] < 0x80;
            i++;
        }
        if (i == text.Length && ascii)
        {
            return text;
        }
        // Look-alike names: combining marks are shown as escapes, so "e\u0301" (NFD) and "é" (NFC) print differently.
        // (Graft runs with invariant globalization, where .NET cannot normalise, so every combining mark is escaped;
        // tensor names rarely hold one.) Zero-width characters are always escaped (NeedsEscape).
        int mark = 0;
        while (mark < i && !IsMark(text[mark]))
        {
            mark++;
        }
        if (mark == text.Length)
        {
            return text;
        }
        i = mark;
        var sb = new StringBuilder(text.Length + 16).Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (!NeedsEscape(c) && !IsMark(c))
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

    private static bool IsMark(char c) => char.GetUnicodeCategory(c) is System.Globalization.UnicodeCategory.NonSpacingMark
        or System.Globalization.UnicodeCategory.SpacingCombiningMark or System.Globalization.UnicodeCategory.EnclosingMark;

    /// <summary>
    /// Escapes a multi-line text (a stack trace) line by line: its own line breaks stay, every other control character
    /// is escaped.
    /// </summary>
    public static string EscapeLines(string text) =>
        string.Join(Environment.NewLine, text.ReplaceLineEndings("\n").Split('\n').Select(Escape));

    /// <summary>
    /// Control characters, the bidirectional formatting characters that reorder what a terminal shows, and invisible
    /// characters that make two names look alike (zero-width space, joiners, word joiner, byte-order mark, soft hyphen).
    /// </summary>
    internal static bool NeedsEscape(char c) =>
        char.IsControl(c) || c is '\u061c' or '\u200e' or '\u200f' or (>= '\u202a' and <= '\u202e') or (>= '\u2066' and <= '\u2069')
        or (>= '\u200b' and <= '\u200d') or '\u2060' or '\ufeff' or '\u00ad' or '\u180e';
}

/// <summary>
/// A writer that escapes what passes through it as <see cref="TerminalText.Escape"/> does, keeping line breaks: for text
/// Graft does not format itself, such as System.CommandLine's parse errors, which quote arguments (a file name with ESC or
/// BEL reaching the terminal raw through a shell glob).
/// </summary>
internal sealed class EscapingWriter(TextWriter inner) : TextWriter
{
    public override Encoding Encoding => inner.Encoding;

    public override void Write(char value)
    {
        if (value == '\n' || !TerminalText.NeedsEscape(value))
        {
            inner.Write(value);
            return;
        }
        inner.Write(TerminalText.Escape(value.ToString()));
    }

    public override void Write(string? value)
    {
        if (value is not null)
        {
            inner.Write(string.Join('\n', value.Split('\n').Select(l => l.EndsWith('\r') ? TerminalText.Escape(l[..^1]) + "\r" : TerminalText.Escape(l))));
        }
    }

    public override void WriteLine(string? value)
    {
        Write(value);
        inner.WriteLine();
    }

    public override void Flush() => inner.Flush();
}
