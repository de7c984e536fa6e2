namespace Graft.TestSupport;

/// <summary>The repository the tests run from (the folder holding Graft.slnx), found from the test binaries, and its fixtures.</summary>
internal static class RepoPaths
{
    private static readonly Lazy<string> s_root = new(() =>
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "Graft.slnx")))
            {
                return d.FullName;
            }
        }
        throw new InvalidOperationException("Graft.slnx not found above " + AppContext.BaseDirectory);
    });

    /// <summary>The repository root.</summary>
    public static string Root => s_root.Value;

    /// <summary><c>tests/fixtures/</c><paramref name="folder"/> (or the fixtures folder itself).</summary>
    public static string Fixtures(string folder = "") => Path.Combine(Root, "tests", "fixtures", folder);
}
