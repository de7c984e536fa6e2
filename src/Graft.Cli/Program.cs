namespace Graft.Cli;

internal static class Program
{
    public static int Main(string[] args) => GraftApp.Run(args, Console.Out, Console.Error);
}
