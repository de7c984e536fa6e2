using System.CommandLine;
using Graft.Checkpoints;
using Graft.Cli.Commands;
using Graft.Numerics;
using Graft.Transfer;
using Spectre.Console;

namespace Graft.Cli;

/// <summary>Documented exit codes of the <c>graft</c> command.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary><c>graft diff --exit-code</c> only: the checkpoints differ (like <c>git diff --exit-code</c>).</summary>
    public const int Differs = 1;
    /// <summary>
    /// The command line could not be parsed (unknown option, missing argument): 64 as sysexits' EX_USAGE, apart from
    /// <see cref="Differs"/> so that a typo never reads as "the files differ".
    /// </summary>
    public const int Syntax = 64;
    /// <summary>
    /// An argument value is invalid (bad rule, output equal to an input, unknown format, a bad environment variable), or
    /// the plan refuses what the arguments ask (a rule that does not fit a tensor): <see cref="InvalidInputException"/>
    /// and <see cref="TransferPlanException"/>.
    /// </summary>
    public const int InvalidArgument = 2;
    /// <summary>An input file is missing or unreadable, or the output cannot be written.</summary>
    public const int FileError = 3;
    /// <summary>A checkpoint is malformed or hostile.</summary>
    public const int BadCheckpoint = 4;
    /// <summary><c>--strict</c>: something would not be fully transferred. Nothing was written.</summary>
    public const int NotStrict = 5;
    /// <summary>libtorch's CPU convolutions compute wrong values on this machine and the workaround did not cure them; nothing was computed.</summary>
    public const int Numerics = 6;
    /// <summary>A numerical verification failed (the demo's checks): a promise did not hold on this machine.</summary>
    public const int VerificationFailed = 7;
    /// <summary>A bug in Graft; rerun with <c>--verbose</c> for the stack trace.</summary>
    public const int Internal = 70;
}

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

/// <summary>Entry point shared by <c>Main</c> and the CLI tests (which run commands in-process).</summary>
internal static class GraftApp
{
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Show stack traces on errors.", Recursive = true };

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var ctx = new CliContext(stdout, stderr);
        var root = new RootCommand("graft: carry trained weights into networks of another shape.")
        {
            InspectCommand.Create(ctx),
            DiffCommand.Create(ctx),
            PlanCommand.Create(ctx),
            ShowCommand.Create(ctx),
            ConvertCommand.Create(ctx),
            TransferCommand.Create(ctx),
            DemoCommand.Create(ctx),
            DoctorCommand.Create(ctx),
        };
        root.Options.Add(Verbose);
        var parse = root.Parse(args);
        // Parse errors quote the arguments (file names a glob chose): escaped like every other message.
        var config = new InvocationConfiguration { Output = stdout, Error = parse.Errors.Count > 0 ? new EscapingWriter(stderr) : stderr, EnableDefaultExceptionHandler = false };
        bool verbose = parse.GetValue(Verbose);
        // Say once, on standard error, when the numerics guard had to change the process. (When it found the process beyond
        // repair, the NumericsException that follows says so, in the one error line.)
        var gate = new Lock();
        void Notice(object? sender, NumericsGuardReport report)
        {
            if (!report.Trusted)
            {
                return;
            }
            lock (gate)
            {
                stderr.WriteLine($"graft: {report.Describe()}.");
            }
        }
        void Stale(string path)
        {
            lock (gate)
            {
                stderr.WriteLine($"graft: removed {TerminalText.Escape(path)}, a temporary file left by an earlier graft that was killed.");
            }
        }
        NumericsGuard.Intervened += Notice;
        OutputSet.StaleTemporaryRemoved += Stale;
        try
        {
            int code = parse.Invoke(config);
            // System.CommandLine reports its own parse errors (with help) and returns 1, which is Differs here.
            return parse.Errors.Count > 0 ? ExitCodes.Syntax : code;
        }
        catch (Exception ex)
        {
            var (code, message) = Describe(ex);
            // Messages name files and tensors, which a hostile checkpoint chooses: escape them like every other output.
            stderr.WriteLine($"graft: {TerminalText.Escape(message)}");
            if (verbose || code == ExitCodes.Internal)
            {
                stderr.WriteLine(verbose ? TerminalText.EscapeLines(ex.ToString()) : "(rerun with --verbose for details)");
            }
            return code;
        }
        finally
        {
            NumericsGuard.Intervened -= Notice;
            OutputSet.StaleTemporaryRemoved -= Stale;
        }
    }

    /// <summary>
    /// The one place that maps errors to exit codes and one-line messages. Exits 2, 4 and 5 are for what the user can fix:
    /// a planned refusal (<see cref="TransferPlanException"/>, <see cref="TransferStrictException"/>), input the user
    /// typed or chose (<see cref="InvalidInputException"/>), a bad checkpoint. A plain <see cref="ArgumentException"/> or
    /// <see cref="NotSupportedException"/> is Graft calling itself wrongly, a defect: exit 70, like anything unforeseen.
    /// </summary>
    internal static (int Code, string Message) Describe(Exception ex) => ex switch
    {
        CheckpointFormatException e => (ExitCodes.BadCheckpoint, e.Message),
        NumericsException e => (ExitCodes.Numerics, $"{e.Message}. Refusing to compute; nothing was written (`graft doctor` shows the details; {NumericsGuard.ModeVariable}=off overrides at your own risk)."),
        TransferStrictException e => (ExitCodes.NotStrict, e.Message + ". Nothing was written."),
        TransferRefusedException e => (ExitCodes.NotStrict, e.Message + (e.Message.EndsWith('.') ? "" : ".") + " Nothing was written."),
        TransferPlanException e => (ExitCodes.InvalidArgument, e.Message),
        InvalidInputException e => (ExitCodes.InvalidArgument, e.Message),
        FileNotFoundException e when e.Message.Contains('\uFFFD', StringComparison.Ordinal) => (ExitCodes.FileError,
            e.Message + " (the name holds U+FFFD, the mark .NET leaves for bytes that are not UTF-8: Graft cannot open a file whose name is not UTF-8; rename it)"),
        FileNotFoundException e => (ExitCodes.FileError, e.Message),
        DirectoryNotFoundException e => (ExitCodes.FileError, e.Message),
        UnauthorizedAccessException e => (ExitCodes.FileError, e.Message),
        IOException e => (ExitCodes.FileError, e.Message),
        _ => (ExitCodes.Internal, $"internal error: {ex.GetType().Name}: {ex.Message}"),
    };
}
