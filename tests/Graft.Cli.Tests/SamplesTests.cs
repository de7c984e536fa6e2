namespace Graft.Cli.Tests;

/// <summary>
/// The programs in samples/ run in quick mode as a user would run them (child processes of their own build output,
/// built before this project through non-referencing project references), and say what they promise.
/// </summary>
public class SamplesTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);

    /// <summary>samples/NAME/bin/CONFIGURATION/TFM/NAME.dll, the configuration and framework of this test build.</summary>
    private static string SampleDll(string name)
    {
        var tfm = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = tfm.Parent!.Name;
        var dll = Path.Combine(CliHarness.RepoRoot(), "samples", name, "bin", configuration, tfm.Name, name + ".dll");
        Assert.True(File.Exists(dll), $"{dll} was not built (the test project builds it through a project reference)");
        return dll;
    }

    [Fact]
    public void LinkedForumNet_Quick_HasConv1sParametersOnlyAndTrainsAndReloads()
    {
        var (code, stdout, stderr) = CliHarness.RunDll(SampleDll("LinkedForumNet"), Timeout, null, "--quick");
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("parameters: 4,640; state_dict: conv_1.bias, conv_1.weight", stdout);
        Assert.Contains("output (1, 64, 32, 32)", stdout);
        Assert.Contains("outputs identical", stdout);
        Assert.Contains("all checks passed", stdout);
    }

    [Fact]
    public void FineTuneResNet_Quick_AdaptsTheStemKeepsANewHeadAndFineTunes()
    {
        var (code, stdout, stderr) = CliHarness.RunDll(SampleDll("FineTuneResNet"), Timeout, null, "--quick");
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("conv1.weight adapted  stem inputs 3→1: sum over the source inputs", stdout);
        Assert.Contains("122 tensors: 119 copied, 1 adapted, 2 kept; 2 source tensors unused", stdout);
        Assert.Contains("verdict: complete apart from a new head", stdout);
        Assert.Matches(@"test accuracy [\d.]+ % before, [\d.]+ % after", stdout);
    }

    [Graft.TestSupport.MlNetResNet18Fact]
    public void OnnxResNet18_Quick_MatchesMlNetsGraphIntoTorchVisionAndTrains()
    {
        var (code, stdout, stderr) = CliHarness.RunDll(SampleDll("OnnxResNet18"), Timeout, null, "--quick");
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("134 tensors: 131 copied, 1 adapted, 2 kept; 0 source tensors unused; verdict: complete apart from a new head", stdout);
        Assert.Contains("matched by structure", stdout);
        Assert.Contains("pair: conv1 ← Convolution249", stdout);
        Assert.Matches(@"loss [\d.]+ → [\d.]+ after 3 steps", stdout);
    }

    /// <summary>
    /// ML.NET's ImageNet ResNet-18 (ONNX, tensors named Parameter91, Constant98 …) carried into a 1-channel, 10-class
    /// TorchVision ResNet by graph matching alone, then the three arms fine-tuned on real Fashion-MNIST images. Needs
    /// Debian's dataset-fashion-mnist: the sample installs it as root; elsewhere this test says what to run.
    /// </summary>
    [Fact]
    public void FashionMnistTransfer_Quick_CarriesTheOnnxNetworkAndTrainsAllThreeArms()
    {
        if (!File.Exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") && Environment.UserName != "root")
        {
            Assert.Fail("Fashion-MNIST is not installed and this process cannot install it: run `sudo apt-get install dataset-fashion-mnist`");
        }
        var (code, stdout, stderr) = CliHarness.RunDll(SampleDll("FashionMnistTransfer"), Timeout, null, "--quick");
        Assert.True(code == 0, stdout + stderr);
        // The stem is the one adapted tensor (3 RGB inputs summed to 1), the new 10-class head keeps its own init, and
        // every other tensor of the [2, 2, 2, 3] network is carried from the ONNX file.
        Assert.Matches(@"conv1\.weight adapted: stem inputs 3→1: sum over the source inputs", stdout);
        Assert.Matches(@"fc\.weight kept", stdout);
        foreach (var arm in new[] { "transferred", "stem-reinit", "scratch" })
        {
            var m = System.Text.RegularExpressions.Regex.Match(stdout, $@"seed 1, {arm} +test accuracy +([\d.]+) %");
            Assert.True(m.Success, $"no accuracy for {arm}:\n{stdout}");
            double accuracy = double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(accuracy, 0, 100);
        }
        Assert.Matches(@"\| 100 \| [\d.]+ ± 0\.0 % \| [\d.]+ ± 0\.0 % \| [\d.]+ ± 0\.0 % \|", stdout);
    }
}
