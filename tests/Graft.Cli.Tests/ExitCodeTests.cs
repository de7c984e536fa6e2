using Graft.Checkpoints;
using Graft.Transfer;
using TorchSharp;

namespace Graft.Cli.Tests;

/// <summary>
/// Exit codes 2, 4 and 5 say "you can fix this"; 70 says "Graft has a bug". A library defect that surfaces as an
/// <see cref="ArgumentException"/> must not read as the user's mistake.
/// </summary>
public sealed class ExitCodeTests : IDisposable
{
    private readonly CliHarness _h = new();

    public void Dispose() => _h.Dispose();

    [Fact]
    public void Describe_PlainArgumentException_IsInternal70()
    {
        var (code, message) = GraftApp.Describe(new ArgumentException("Index was outside the layout's axes.", "axis"));
        Assert.Equal(ExitCodes.Internal, code);
        Assert.StartsWith("internal error: ArgumentException", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_ArgumentOutOfRangeAndNotSupported_AreInternal70()
    {
        Assert.Equal(ExitCodes.Internal, GraftApp.Describe(new ArgumentOutOfRangeException("rule")).Code);
        Assert.Equal(ExitCodes.Internal, GraftApp.Describe(new NotSupportedException("no twin")).Code);
    }

    [Fact]
    public void Describe_InvalidInputAndPlannedRefusal_Are2WithTheMessageAsIs()
    {
        Assert.Equal((ExitCodes.InvalidArgument, "--rule: bad"), GraftApp.Describe(new InvalidInputException("--rule: bad")));
        Assert.Equal((ExitCodes.InvalidArgument, "refused"), GraftApp.Describe(new TransferPlanException("refused")));
    }

    [Theory]
    [InlineData("--rule", "conv1", "--rule: Tensor rule 'conv1'")]
    [InlineData("--rename", "no-equals-sign", "--rename: Rename rule 'no-equals-sign'")]
    [InlineData("--group", "a,b", "--group: Channel group 'a,b'")]
    [InlineData("--preset", "magic", "--preset: Unknown preset 'magic'")]
    [InlineData("--shard-size", "12 parsecs", "--shard-size: '12 parsecs'")]
    public void Plan_BadOptionText_Exit2OneLineNamingTheOptionOnce(string option, string value, string expected)
    {
        var (src, tpl) = Case();
        var args = option == "--shard-size"
            ? new[] { "transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors.index.json"), option, value }
            : ["plan", src, "--into", tpl, option, value];
        var (code, _, stderr) = _h.Run(args);
        Assert.Equal(ExitCodes.InvalidArgument, code);
        Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.Contains("graft: " + expected, stderr, StringComparison.Ordinal);
        Assert.Equal(stderr.IndexOf(option, StringComparison.Ordinal), stderr.LastIndexOf(option, StringComparison.Ordinal));
    }

    [Fact]
    public void Transfer_PreserveFunctionWithPreset_Exit2()
    {
        var (src, tpl) = Case();
        var (code, _, stderr) = _h.Run("transfer", src, "--into", tpl, "--out", _h.PathOf("o.safetensors"), "--preserve-function", "--preset", "timm");
        Assert.Equal(ExitCodes.InvalidArgument, code);
        Assert.Contains("--preserve-function", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("o.safetensors", _h.Files());
    }

    [Fact]
    public void Convert_OutputIsAFolder_Exit2()
    {
        var (src, _) = Case();
        Directory.CreateDirectory(_h.PathOf("folder"));
        var (code, _, stderr) = _h.Run("convert", src, _h.PathOf("folder"));
        Assert.Equal(ExitCodes.InvalidArgument, code);
        Assert.Contains("is a folder", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Show_TensorOfADTypeTorchSharpCannotHold_Exit2NotInternal()
    {
        // Reading it would throw TorchSharp's NotSupportedException (exit 70); the tensor was the user's choice.
        var path = _h.PathOf("u16.safetensors");
        CheckpointFile.Write(path, [TensorPayload.FromBytes("conv.weight", DType.U16, new Shape(2, 1, 3, 3), new byte[36])]);
        var (code, _, stderr) = _h.Run("show", path, "--tensor", "conv.weight", "--out", _h.PathOf("g.png"));
        Assert.Equal(ExitCodes.InvalidArgument, code);
        Assert.Contains("U16", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("g.png", _h.Files());
    }

    [Fact]
    public void Convert_ShardedFormatWithoutAnIndexName_Exit2()
    {
        var (src, _) = Case();
        var (code, _, stderr) = _h.Run("convert", src, _h.PathOf("model.bin"), "--format", "safetensors-sharded");
        Assert.Equal(ExitCodes.InvalidArgument, code);
        Assert.Contains("a sharded index must be named", stderr, StringComparison.Ordinal);
    }

    private (string Source, string Template) Case()
    {
        torch.manual_seed(3);
        return (_h.Save(torch.nn.Linear(4, 2), "src.safetensors"), _h.Save(torch.nn.Linear(4, 2), "tpl.safetensors"));
    }

    [Fact]
    public void Demo_AVerificationFails_Exit7OneLineNamingThePromiseAndTheDifference()
    {
        // No lever makes libtorch compute wrong numbers on purpose (that is exit 6's job, tested in NumericsCommandTests):
        // the growth checks' own wording for a 3-D inflation off by 3e-3 goes through the demo's conclusion.
        var ok = new Graft.Growth.OutputDifference(0, 0, 3);
        var growth = new Graft.Demo.GrowthDemoResult(ok, ok, InflatedMaxAbsolute: 3e-3);
        Assert.False(growth.Verified);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = Commands.DemoCommand.Conclude(new CliContext(stdout, stderr), growth.Failures.Select(f => "growth: " + f).ToList());
        Assert.Equal(7, code);
        var line = Assert.Single(stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("graft: demo verification failed: growth: 3-D: max |difference| 3e-3 ≥ 1e-4", line, StringComparison.Ordinal);
        Assert.Empty(stdout.ToString());

        using var quiet = new StringWriter();
        Assert.Equal(0, Commands.DemoCommand.Conclude(new CliContext(stdout, quiet), new Graft.Demo.GrowthDemoResult(ok, ok, 0).Failures));
        Assert.Empty(quiet.ToString());
    }
}
