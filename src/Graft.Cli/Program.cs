using System.Runtime.InteropServices;
using Graft.Checkpoints;

namespace Graft.Cli;

internal static class Program
{
    public static int Main(string[] args)
    {
        // Ctrl-C or a polite kill: the temporaries of the outputs being written go with the process (the default action,
        // ending it, follows). A kill -9 leaves them; the next write into that folder removes them and says so.
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => OutputSet.RemoveTemporaries());
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => OutputSet.RemoveTemporaries());
        // File names that are not UTF-8 (Linux): recovered from the command line's bytes, since .NET gives U+FFFD for them.
        return GraftApp.Run(RawPath.FromCommandLine(args), Console.Out, Console.Error);
    }
}
