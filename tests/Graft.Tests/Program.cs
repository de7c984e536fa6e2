using Graft.Tests.Numerics;

namespace Graft.Tests;

/// <summary>
/// The test assembly's entry point. The test runner never calls it (it loads the assembly); a test starts it as a child
/// process (<c>dotnet Graft.Tests.dll COMMAND</c>) for what needs a process of its own, such as the numerics guard, which
/// decides once per process.
/// </summary>
internal static class Program
{
    public static int Main(string[] args) => args is [GuardedEntryPoints.Command]
        ? GuardedEntryPoints.RunAll(Console.Out)
        : Usage();

    private static int Usage()
    {
        Console.Error.WriteLine($"usage: dotnet Graft.Tests.dll {GuardedEntryPoints.Command}   (the test runner loads this assembly; this entry point serves child processes of tests)");
        return 2;
    }
}
