namespace Graft.Cli;

/// <summary>One column of a <see cref="TextTable"/>.</summary>
/// <param name="Header">Column title.</param>
/// <param name="RightAligned">Numbers line up on the right.</param>
internal sealed record TextTableColumn(string Header, bool RightAligned = false);

/// <summary>
/// One cell of a <see cref="TextTable"/> row: its text and its colour, which the command chooses from its typed value
/// (a status, a kind), never from the rendered words.
/// </summary>
/// <param name="Text">What the cell says.</param>
/// <param name="Colour">ANSI SGR colour for the text (for example <c>"32"</c>, green), or null; used only on a colour terminal.</param>
internal readonly record struct TextCell(string Text, string? Colour = null)
{
    /// <summary>A cell without colour.</summary>
    public static implicit operator TextCell(string text) => new(text);
}

/// <summary>
/// The CLI's tables, written row by row. A checkpoint can hold hundreds of thousands of tensors: a rendering library
/// that builds the whole table before printing it took a gigabyte and ten seconds for 200,000 rows. Here the rows are
/// enumerated twice (once to size the columns, once to print) and never held, so memory stays flat and time linear.
/// Every cell goes through <see cref="TerminalText.Escape"/>.
/// </summary>
internal static class TextTable
{
    /// <summary>Columns wider than this are not padded further; a longer cell runs on and pushes its row's later cells.</summary>
    public const int MaxColumnWidth = 60;

    /// <summary>
    /// Writes the header, a rule and every row of <paramref name="rows"/> (called twice; it must give the same rows each
    /// time). Returns the number of rows written; nothing at all is written when there are none.
    /// </summary>
    public static long Write(CliContext ctx, IReadOnlyList<TextTableColumn> columns, Func<IEnumerable<TextCell[]>> rows)
    {
        var widths = columns.Select(c => Math.Min(c.Header.Length, MaxColumnWidth)).ToArray();
        long count = 0;
        foreach (var row in rows())
        {
            for (int i = 0; i < columns.Count; i++)
            {
                widths[i] = Math.Max(widths[i], Math.Min(TerminalText.Escape(row[i].Text).Length, MaxColumnWidth));
            }
            count++;
        }
        if (count == 0)
        {
            return 0;
        }
        bool ansi = ctx.Ansi;
        var o = ctx.Out;
        WriteLine(o, columns, widths, columns.Select(c => (TextCell)c.Header).ToArray(), ansi: false);
        WriteLine(o, columns, widths, widths.Select(w => (TextCell)new string('─', w)).ToArray(), ansi: false);
        foreach (var row in rows())
        {
            WriteLine(o, columns, widths, row, ansi);
        }
        return count;
    }

    private static void WriteLine(TextWriter o, IReadOnlyList<TextTableColumn> columns, int[] widths, TextCell[] cells, bool ansi)
    {
        var line = new System.Text.StringBuilder(" ");
        for (int i = 0; i < columns.Count; i++)
        {
            var text = TerminalText.Escape(cells[i].Text);
            var pad = new string(' ', Math.Max(0, widths[i] - text.Length));
            var colour = ansi ? cells[i].Colour : null;
            if (i > 0)
            {
                line.Append("  ");
            }
            if (columns[i].RightAligned)
            {
                line.Append(pad);
            }
            line.Append(colour is null ? text : $"\u001b[{colour}m{text}\u001b[0m");
            if (!columns[i].RightAligned && i < columns.Count - 1)
            {
                line.Append(pad);
            }
        }
        o.WriteLine(line.ToString().TrimEnd());
    }
}
