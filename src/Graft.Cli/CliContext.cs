using Spectre.Console;

namespace Graft.Cli;

/// <summary>What every command gets: where to write, and how loud to be.</summary>
internal sealed class CliContext(TextWriter stdout, TextWriter stderr)
{
    public TextWriter Out { get; } = stdout;

    public TextWriter Err { get; } = stderr;

    private readonly Lazy<IAnsiConsole> _console = new(() => CreateConsole(stdout));

    /// <summary>
    /// Rich output (tables, progress) on standard output; 160 columns wide when not a terminal. Made on first use:
    /// loading and detecting Spectre.Console is a measurable part of start-up that commands writing plain text skip.
    /// </summary>
    public IAnsiConsole Console => _console.Value;

    /// <summary>True when standard output takes ANSI escapes: a terminal that Spectre.Console detects as one (never when redirected).</summary>
    public bool Ansi => ReferenceEquals(Out, System.Console.Out) && !System.Console.IsOutputRedirected && Console.Profile.Capabilities.Ansi;

    private static IAnsiConsole CreateConsole(TextWriter stdout)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
    {
        Out = new AnsiConsoleOutput(stdout),
        Ansi = ReferenceEquals(stdout, System.Console.Out) && !System.Console.IsOutputRedirected ? AnsiSupport.Detect : AnsiSupport.No,
        ColorSystem = ReferenceEquals(stdout, System.Console.Out) && !System.Console.IsOutputRedirected ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        Interactive = ReferenceEquals(stdout, System.Console.Out) && !System.Console.IsOutputRedirected ? InteractionSupport.Detect : InteractionSupport.No,
        });
        if (!ReferenceEquals(stdout, System.Console.Out) || System.Console.IsOutputRedirected)
        {
            console.Profile.Width = 160;
        }
        return console;
    }

    /// <summary>True when a person watches standard error (progress bars go there only then).</summary>
    public bool ErrIsTerminal => ReferenceEquals(Err, System.Console.Error) && !System.Console.IsErrorRedirected;
}
