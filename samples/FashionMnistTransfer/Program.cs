// ML.NET's ImageNet-pretrained ResNet-18 (an ONNX file from the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18)
// carried by Graft into a grayscale TorchVision .NET ResNet with a 10-class head, then fine-tuned on a few labelled
// Fashion-MNIST images, next to two baselines on the same images with the same budget:
//   transferred   every pretrained tensor carried over; the RGB stem summed to one gray input (Graft's default)
//   stem-reinit   the same, but the mismatched stem re-initialised (the rule of the usual hand-written fix)
//   scratch       the same architecture from its own initialisation
//
//   dotnet run -c Release --project samples/FashionMnistTransfer                  # N = 100 and 1,000, 3 seeds each
//   dotnet run -c Release --project samples/FashionMnistTransfer -- --quick       # a few hundred images, one epoch
//   … -- --n 100 --seeds 5 --lr 3e-4 --bn frozen --warmup 1 --out results/       # the recipe's knobs, and outputs
//
// Fashion-MNIST comes from Debian's dataset-fashion-mnist (installed when missing and running as root); the network
// from the NuGet package restored with this project. Nothing is downloaded at run time.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Graft.Transfer;
using TorchSharp;
using static TorchSharp.torch;

var inv = CultureInfo.InvariantCulture;
var options = Options.Parse(args);
if (options is null)
{
    return 2;
}
var data = FashionMnist.Locate(options.Data);
if (data is null)
{
    return 2;
}
var onnx = Path.Combine(AppContext.BaseDirectory, "ResNet18.onnx");
if (!File.Exists(onnx))
{
    Console.Error.WriteLine($"{onnx} is missing: build the project (its restore brings ML.NET's ResNet-18 package).");
    return 2;
}
torch.set_num_threads(Math.Max(1, Environment.ProcessorCount));
var log = options.Json ? Console.Error : Console.Out;
var train = FashionMnist.Read(data, "train");
var test = FashionMnist.Read(data, "t10k");
var (testX, testY) = FashionMnist.Balanced(test.Pixels, test.Labels, test.Count, options.TestPerClass, seed: 12345, options.Size);
long curveCount = Math.Min(options.CurveImages, testX.shape[0]);
var (curveX, curveY) = (testX.narrow(0, 0, curveCount), testY.narrow(0, 0, curveCount));
log.WriteLine($"Fashion-MNIST from {data}; {testX.shape[0]} held-out test images ({options.TestPerClass} per class), {options.Size}×{options.Size}");
log.WriteLine($"pretrained: {Path.GetFileName(onnx)} (ML.NET's ImageNet ResNet-18, [2, 2, 2, 3] basic blocks, RGB)");
log.WriteLine($"recipe: {options.Recipe}");

var runs = new List<RunResult>();
var clock = Stopwatch.StartNew();
bool reported = false;
foreach (int n in options.Sizes)
{
    foreach (int seed in options.SeedList)
    {
        var (trainX, trainY) = FashionMnist.Balanced(train.Pixels, train.Labels, train.Count, n / 10, seed, options.Size);
        foreach (var arm in options.Arms)
        {
            manual_seed(seed);
            using var model = Networks.GrayResNet(classes: 10);
            var transferWatch = Stopwatch.StartNew();
            var report = arm switch
            {
                Arm.Transferred => WeightTransfer.IntoModule(onnx, model),
                Arm.StemReinit => WeightTransfer.IntoModule(onnx, model, TransferPolicy.Default with { Rules = [new TensorRule("conv1.weight") { Skip = true }] }),
                _ => null,
            };
            double transferSeconds = transferWatch.Elapsed.TotalSeconds;
            if (report is not null && !reported)
            {
                reported = true;
                log.WriteLine($"transfer ({transferSeconds:F2} s): " + Describe(report));
            }
            var curve = new List<(int Epoch, double Accuracy)> { (0, Training.Accuracy(model, curveX, curveY)) };
            var epochWatch = Stopwatch.StartNew();
            var epochSeconds = new List<double>();
            Training.Fit(model, trainX, trainY, options.Recipe, pretrained: arm != Arm.Scratch, seed, epoch =>
            {
                epochSeconds.Add(epochWatch.Elapsed.TotalSeconds);
                if (options.CurveEpochs.Contains(epoch))
                {
                    curve.Add((epoch, Training.Accuracy(model, curveX, curveY)));
                }
                Progress(log, $"N = {n}, seed {seed}, {Words.Of(arm)}: epoch {epoch}/{options.Recipe.Epochs}");
                epochWatch.Restart();
            });
            double accuracy = Training.Accuracy(model, testX, testY);
            runs.Add(new RunResult(n, seed, Words.Of(arm), accuracy, curve.Select(c => new CurvePoint(c.Epoch, c.Accuracy)).ToList(),
                report is null ? null : transferSeconds, EpochSeconds(epochSeconds)));
            Progress(log, "");
            log.WriteLine(string.Format(inv, "N = {0,5}, seed {1}, {2,-11} test accuracy {3,6:P1}   ({4:F1} s an epoch)",
                n, seed, Words.Of(arm), accuracy, EpochSeconds(epochSeconds)));
        }
        trainX.Dispose();
        trainY.Dispose();
    }
}

var table = Summary.Table(runs, options);
log.WriteLine();
log.WriteLine(table);
log.WriteLine($"({clock.Elapsed.TotalMinutes:F1} min)");
if (options.Out is not null)
{
    Directory.CreateDirectory(options.Out);
    Chart.LearningCurves(runs, Path.Combine(options.Out, "learning-curves.png"));
    File.WriteAllText(Path.Combine(options.Out, "results.json"), Summary.Json(runs, options));
    log.WriteLine($"wrote {Path.Combine(options.Out, "learning-curves.png")} and results.json");
}
if (options.Json)
{
    Console.WriteLine(Summary.Json(runs, options));
}
return 0;

static string Describe(TransferReport report)
{
    var counts = report.Targets.GroupBy(t => PolicyWords.Word(t.Status)).Select(g => $"{g.Count()} {g.Key}");
    var notable = report.Targets.Where(t => t.Status != TargetStatus.Copied).Select(t => $"{t.Name} {PolicyWords.Word(t.Status)}: {t.Reason}");
    return $"{report.Targets.Count} tensors: {string.Join(", ", counts)}" + Environment.NewLine + "  " + string.Join(Environment.NewLine + "  ", notable);
}

// The median epoch after the first (which warms up: JIT, allocator), or the only one.
static double EpochSeconds(List<double> epochs) =>
    epochs.Count == 1 ? epochs[0] : epochs.Skip(1).Order().ElementAt((epochs.Count - 1) / 2);

static void Progress(TextWriter log, string text)
{
    if (!Console.IsErrorRedirected && ReferenceEquals(log, Console.Error) || !Console.IsOutputRedirected && ReferenceEquals(log, Console.Out))
    {
        log.Write("\r" + text.PadRight(60) + (text.Length == 0 ? "\r" : ""));
    }
}

/// <summary>The three ways to start the grayscale network.</summary>
internal enum Arm { Transferred, StemReinit, Scratch }

internal static class Words
{
    public static string Of(Arm arm) => arm switch { Arm.Transferred => "transferred", Arm.StemReinit => "stem-reinit", _ => "scratch" };
}

/// <summary>One fine-tuning run; <c>EpochSeconds</c> is the median training time of an epoch after the first.</summary>
internal sealed record RunResult(int N, int Seed, string Arm, double Accuracy, IReadOnlyList<CurvePoint> Curve, double? TransferSeconds, double EpochSeconds);

/// <summary>Test accuracy (on the curve subset) after an epoch; epoch 0 is before fine-tuning.</summary>
internal sealed record CurvePoint(int Epoch, double Accuracy);
