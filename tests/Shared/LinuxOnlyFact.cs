namespace Graft.TestSupport;

/// <summary>A fact that needs Linux (the dynamic loader's trace, /proc, glibc's environment); elsewhere it is skipped with its reason.</summary>
public sealed class LinuxOnlyFactAttribute : FactAttribute
{
    public LinuxOnlyFactAttribute(string reason)
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = reason + "; Linux only";
        }
    }
}
