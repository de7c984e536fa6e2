using System.CommandLine;
using Graft.Checkpoints;
using Graft.Cli.Commands;
using Graft.Numerics;
using Graft.Transfer;
using Spectre.Console;

namespace Graft.Cli;

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
            e.Message + " (the name holds U+FFFD, the mark .NET leaves for bytes that are not UTF-8, and Graft could not recover the bytes: only Linux's command line gives them, and the folder must exist)"),
        FileNotFoundException e => (ExitCodes.FileError, e.Message),
        DirectoryNotFoundException e => (ExitCodes.FileError, e.Message),
        UnauthorizedAccessException e => (ExitCodes.FileError, e.Message),
        IOException e => (ExitCodes.FileError, e.Message),
        _ => (ExitCodes.Internal, $"internal error: {ex.GetType().Name}: {ex.Message}"),
    };
}
