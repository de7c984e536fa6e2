using Graft.Checkpoints;

namespace Graft.Cli.Tests;

/// <summary>
/// Tensor names come from the checkpoint, so a hostile file chooses them: a name holding ESC/BEL sequences must never
/// reach the terminal raw (it could retitle the window, clear the screen or forge lines). JSON keeps the exact name.
/// </summary>
public sealed class TerminalTextTests : IDisposable
{
    private const string Hostile = "a\u001b]0;owned\u0007\u001b[2J.weight";

    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    private static TensorPayload F32(string name, params long[] shape)
    {
        var s = new Shape(shape);
        return TensorPayload.FromBytes(name, DType.F32, s, new byte[s.ElementCount * 4]);
    }

    /// <summary>No C0/C1 control character other than the line breaks the command writes itself.</summary>
    private static void AssertNoControlCharacters(string text)
    {
        foreach (var c in text)
        {
            Assert.False(char.IsControl(c) && c is not '\n' and not '\r', $"control character U+{(int)c:X4} in output:\n{text}");
        }
    }

    [Fact]
    public void Escape_ControlAndBidiCharacters_BecomeVisibleEscapes()
    {
        Assert.Equal(@"a\x1b]0;owned\x07\x1b[2J.weight", TerminalText.Escape(Hostile));
        Assert.Equal(@"x\ny\tz\x7f\x9b\u202e", TerminalText.Escape("x\ny\tz\u007f\u009b\u202e"));
    }

    [Fact]
    public void Escape_PlainText_IsReturnedUnchanged()
    {
        const string plain = "layer1.0.conv1.weight — ünïcödé";
        Assert.Same(plain, TerminalText.Escape(plain));
    }

    [Fact]
    public void Inspect_NameWithEscapeSequence_PrintsItEscaped()
    {
        var path = _h.PathOf("hostile.safetensors");
        CheckpointFile.Write(path, [F32(Hostile, 2), F32("b.weight", 2)], new Dictionary<string, string> { ["note\u001b[31m"] = "red\u0007" });
        var (code, stdout, stderr) = _h.Run("inspect", path);
        Assert.True(code == 0, stderr);
        AssertNoControlCharacters(stdout);
        Assert.Contains(@"a\x1b]0;owned\x07\x1b[2J.weight", stdout);
        Assert.Contains(@"note\x1b[31m: red\x07", stdout);
    }

    [Fact]
    public void Inspect_JsonWithEscapeSequence_KeepsTheExactName()
    {
        var path = _h.PathOf("hostile.safetensors");
        CheckpointFile.Write(path, [F32(Hostile, 2)]);
        var (code, stdout, stderr) = _h.Run("inspect", path, "--json");
        Assert.True(code == 0, stderr);
        AssertNoControlCharacters(stdout);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        Assert.Equal(Hostile, doc.RootElement.GetProperty("tensorList")[0].GetProperty("name").GetString());
    }

    [Fact]
    public void TransferPlanDiff_NameWithEscapeSequence_PrintEscaped()
    {
        var src = _h.PathOf("src.safetensors");
        var tpl = _h.PathOf("tpl.safetensors");
        CheckpointFile.Write(src, [F32(Hostile, 2), F32("unused\u001b[2J", 3)]);
        CheckpointFile.Write(tpl, [F32(Hostile, 4), F32("other\u0007", 1)]);
        foreach (var args in new[]
        {
            new[] { "transfer", src, "--into", tpl, "--out", _h.PathOf("out.safetensors"), "--all" },
            ["plan", src, "--into", tpl],
            ["diff", src, tpl],
        })
        {
            var (code, stdout, stderr) = _h.Run(args);
            Assert.True(code == 0, stderr);
            AssertNoControlCharacters(stdout);
            AssertNoControlCharacters(stderr);
            Assert.Contains(@"\x1b]0;owned\x07", stdout);
        }
    }

    [Fact]
    public void Errors_NameWithEscapeSequence_AreOneEscapedLine()
    {
        var src = _h.PathOf("src.safetensors");
        var tpl = _h.PathOf("tpl.safetensors");
        CheckpointFile.Write(src, [F32("a.weight", 2)]);
        CheckpointFile.Write(tpl, [F32("b\u001b[2J\nforged line.weight", 2)]);
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("out.safetensors"), "--strict");
        Assert.Equal(5, code);
        AssertNoControlCharacters(stderr.TrimEnd('\n', '\r'));
        Assert.Single(stderr.TrimEnd('\n', '\r').Split('\n'));
        Assert.Contains(@"b\x1b[2J\nforged line.weight", stderr);
    }

    [Fact]
    public void Escape_LookAlikeNames_PrintDifferently()
    {
        const string composed = "caf\u00e9.weight";
        const string decomposed = "cafe\u0301.weight";
        Assert.Same(composed, TerminalText.Escape(composed));
        Assert.Equal(@"cafe\u0301.weight", TerminalText.Escape(decomposed));
        Assert.Equal(@"conv\u200b1.weight", TerminalText.Escape("conv\u200b1.weight"));
        Assert.Equal(@"\ufeffconv1.weight", TerminalText.Escape("\ufeffconv1.weight"));
    }

    [Fact]
    public void ParseError_ArgumentWithEscapeSequence_PrintedEscaped()
    {
        var (code, stdout, stderr) = _h.Run("inspect", "a\u001b]0;owned\u0007.safetensors", "--frobnicate");
        Assert.Equal(64, code);
        AssertNoControlCharacters(stderr);
        AssertNoControlCharacters(stdout);
    }
}
