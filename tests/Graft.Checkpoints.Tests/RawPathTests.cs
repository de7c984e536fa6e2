using Graft.Checkpoints;

namespace Graft.Checkpoints.Tests;

/// <summary>How a name that is not UTF-8 is shown (the rest of <see cref="RawPath"/> needs a process's command line: Graft.Cli.Tests' RawFileNameTests).</summary>
public sealed class RawPathTests
{
    [Fact]
    public void Escape_BytesThatAreNotUtf8_ShownAsHex_Utf8Kept()
    {
        Assert.Equal(@"d\xe9\xff/é€", RawPath.Escape([(byte)'d', 0xE9, 0xFF, (byte)'/', 0xC3, 0xA9, 0xE2, 0x82, 0xAC]));
        // A sequence cut short is shown byte by byte, and so is an overlong encoding of '/'.
        Assert.Equal(@"\xe2\x82x\xc0\xaf", RawPath.Escape([0xE2, 0x82, (byte)'x', 0xC0, 0xAF]));
    }

    [Fact]
    public void FromCommandLine_NoReplacementCharacter_ArgumentsUnchanged()
    {
        string[] args = ["convert", "a.safetensors", "/proc/self/fd/3/b.pt"];
        Assert.Same(args, RawPath.FromCommandLine(args));
        Assert.Equal("/proc/self/fd/3/b.pt", RawPath.Display("/proc/self/fd/3/b.pt"));
    }
}
