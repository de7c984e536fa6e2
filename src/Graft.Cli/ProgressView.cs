using Spectre.Console;

namespace Graft.Cli;

/// <summary>The one progress bar of the CLI: on standard error, and only when a person watches it.</summary>
internal static class ProgressView
{
    /// <summary>
    /// Runs <paramref name="work"/>, handing it a report callback (done, total, current item) when standard error is a
    /// terminal, and null otherwise (scripts and tests see no bar and pay nothing for it).
    /// </summary>
    public static void Run(CliContext ctx, string label, Action<Action<int, int, string>?> work) =>
        Run(ctx, label, report =>
        {
            work(report);
            return 0;
        });

    /// <inheritdoc cref="Run(CliContext, string, Action{Action{int, int, string}?})"/>
    public static T Run<T>(CliContext ctx, string label, Func<Action<int, int, string>?, T> work)
    {
        if (!ctx.ErrIsTerminal)
        {
            return work(null);
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        T result = default!;
        console.Progress().AutoClear(true).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(pc =>
            {
                var task = pc.AddTask(label);
                result = work((done, total, current) =>
                {
                    task.MaxValue = Math.Max(1, total);
                    task.Value = done;
                    task.Description = current.Length == 0 ? label : Markup.Escape(TerminalText.Escape(current.Length > 40 ? "…" + current[^39..] : current));
                });
            });
        return result;
    }
}
