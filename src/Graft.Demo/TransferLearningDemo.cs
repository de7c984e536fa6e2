using System.Diagnostics;
using Graft.Transfer;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Demo;

/// <summary>Loss and accuracy after one epoch of training (epoch 0: before any training).</summary>
/// <param name="Epoch">Epochs done.</param>
/// <param name="TrainLoss">Mean cross-entropy over the epoch's batches (for epoch 0: on the training set, before training).</param>
/// <param name="TestLoss">Cross-entropy on the held-out test set.</param>
/// <param name="TestAccuracy">Fraction of the test set classified correctly.</param>
public sealed record EpochStats(int Epoch, double TrainLoss, double TestLoss, double TestAccuracy);

/// <summary>The demo's budget. Both fine-tuning arms get the same one, on every seed.</summary>
/// <param name="PretrainImages">Images of the pretraining task.</param>
/// <param name="PretrainEpochs">Epochs of pretraining.</param>
/// <param name="TrainImages">Training images of the target task (few: that is where transfer helps).</param>
/// <param name="TestImages">Held-out test images of the target task (one test set for every seed).</param>
/// <param name="Epochs">Fine-tuning epochs, the same for the transferred and the from-scratch network.</param>
/// <param name="BatchSize">Batch size everywhere.</param>
/// <param name="LearningRate">Adam learning rate everywhere.</param>
/// <param name="Seed">Seed of the pretraining and of the test set; fine-tuning seed k is derived from it.</param>
/// <param name="Seeds">
/// Fine-tuning runs: each draws its own training images, target initialisation and batch order, shared by its two arms.
/// One run of a few dozen images says little (single runs cross, and their rounding differs between CPUs); the mean
/// and spread over several do.
/// </param>
public sealed record TransferLearningBudget(int PretrainImages, int PretrainEpochs, int TrainImages, int TestImages, int Epochs, int BatchSize, double LearningRate, int Seed, int Seeds)
{
    /// <summary>The full demo (well under a minute on 2 cores).</summary>
    public static TransferLearningBudget Full { get; } = new(2000, 3, 48, 400, 12, 16, 1e-3, 7, 5);

    /// <summary>A smaller budget for tests: the same steps, less data, fewer epochs and seeds.</summary>
    public static TransferLearningBudget Quick { get; } = new(400, 1, 48, 100, 3, 16, 1e-3, 7, 2);
}

/// <summary>One fine-tuning seed: both arms' histories, from the same images, initialisation and batch order.</summary>
/// <param name="Seed">The seed of this run's training images, target initialisation and batch order.</param>
/// <param name="Transferred">Epoch 0…n of the transferred network.</param>
/// <param name="Scratch">Epoch 0…n of the same architecture from the same initialisation, without the transfer.</param>
public sealed record FineTuneRun(int Seed, IReadOnlyList<EpochStats> Transferred, IReadOnlyList<EpochStats> Scratch);

/// <summary>What <see cref="TransferLearningDemo.Run"/> measured.</summary>
/// <param name="PretrainAccuracy">Accuracy of the pretrained network on held-out images of the pretraining task.</param>
/// <param name="Source">The pretrained network (RGB, 8 classes).</param>
/// <param name="Transferred">The first seed's target network after transfer and fine-tuning.</param>
/// <param name="TransferReport">What the transfer did to every tensor (the same on every seed: only the init differs).</param>
/// <param name="StemAfterTransfer">A copy of the first seed's conv1 weight right after the transfer, before fine-tuning.</param>
/// <param name="Runs">Every fine-tuning seed, in order.</param>
/// <param name="Elapsed">Wall-clock time of the whole experiment.</param>
public sealed record TransferLearningResult(double PretrainAccuracy, nn.Module<Tensor, Tensor> Source, nn.Module<Tensor, Tensor> Transferred, TransferReport TransferReport, Tensor StemAfterTransfer,
    IReadOnlyList<FineTuneRun> Runs, TimeSpan Elapsed)
{
    /// <summary>Test accuracy per epoch over the seeds: mean and sample standard deviation for each arm.</summary>
    public IReadOnlyList<(int Epoch, MeanStd Transferred, MeanStd Scratch)> AccuracyByEpoch =>
        [.. Enumerable.Range(0, Runs[0].Transferred.Count).Select(e => (e,
            MeanStd.Of(Runs.Select(r => r.Transferred[e].TestAccuracy)), MeanStd.Of(Runs.Select(r => r.Scratch[e].TestAccuracy))))];

    /// <summary>
    /// The paired gap (transferred − from scratch, same seed) in final test accuracy, and in test accuracy averaged over
    /// the fine-tuning epochs (1…n: the area under the learning curve, which single noisy epochs move less).
    /// </summary>
    public (MeanStd Final, MeanStd OverEpochs) Gap =>
        (MeanStd.Of(Runs.Select(r => r.Transferred[^1].TestAccuracy - r.Scratch[^1].TestAccuracy)),
         MeanStd.Of(Runs.Select(r => r.Transferred.Skip(1).Average(e => e.TestAccuracy) - r.Scratch.Skip(1).Average(e => e.TestAccuracy))));

    /// <summary>Seeds on which the transferred network ends ahead of the from-scratch one.</summary>
    public int SeedsAhead => Runs.Count(r => r.Transferred[^1].TestAccuracy > r.Scratch[^1].TestAccuracy);
}

/// <summary>Mean and sample standard deviation (n − 1; 0 for one value) of a few measurements.</summary>
/// <param name="Mean">The mean.</param>
/// <param name="Std">The sample standard deviation.</param>
/// <param name="Count">How many values.</param>
public readonly record struct MeanStd(double Mean, double Std, int Count)
{
    /// <summary>Mean and sample standard deviation of <paramref name="values"/> (at least one).</summary>
    public static MeanStd Of(IEnumerable<double> values)
    {
        var v = values.ToArray();
        if (v.Length == 0)
        {
            throw new ArgumentException("no values", nameof(values));
        }
        double mean = v.Average();
        double std = v.Length < 2 ? 0 : Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        return new MeanStd(mean, std, v.Length);
    }
}

/// <summary>
/// Why transfer matters, measured: pretrain a small CNN on <see cref="SyntheticBars.Orientation"/> (RGB, 8 classes),
/// transfer it into a network with 1 input channel, other widths, a 5×5 stem and a 4-class head, then fine-tune it and a
/// from-scratch copy (the very same initialisation, minus the transfer) on the same few images of
/// <see cref="SyntheticBars.Pairs"/> with the same budget, optimiser, batch order and seeds.
/// </summary>
public static class TransferLearningDemo
{
    /// <summary>
    /// The demo's CNN: conv1 (k × k) · bn1 · relu · maxpool 2 · conv2 3×3 · bn2 · relu · maxpool 2 · conv3 3×3 · bn3 · relu ·
    /// global average pool · fc. Names are the state-dict prefixes the transfer matches.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Network(long inputs, long width1, long kernel1, long width2, long width3, long classes) =>
        nn.Sequential(
            ("conv1", nn.Conv2d(inputs, width1, kernel1, padding: kernel1 / 2)),
            ("bn1", nn.BatchNorm2d(width1)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(width1, width2, 3, padding: 1)),
            ("bn2", nn.BatchNorm2d(width2)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(width2, width3, 3, padding: 1)),
            ("bn3", nn.BatchNorm2d(width3)),
            ("relu3", nn.ReLU()),
            ("gap", nn.AdaptiveAvgPool2d(1)),
            ("flatten", nn.Flatten()),
            ("fc", nn.Linear(width3, classes)));

    /// <summary>The pretrained network: RGB in, widths 16 · 32 · 64, 3×3 stem, 8 classes.</summary>
    public static nn.Module<Tensor, Tensor> SourceNetwork() => Network(3, 16, 3, 32, 64, SyntheticBars.OrientationClasses);

    /// <summary>The target network: 1 channel in, widths 24 · 48 · 64, 5×5 stem, 4 classes.</summary>
    public static nn.Module<Tensor, Tensor> TargetNetwork() => Network(1, 24, 5, 48, 64, SyntheticBars.PairNames.Count);

    /// <summary>Runs the experiment; <paramref name="log"/> hears a line at each stage.</summary>
    public static TransferLearningResult Run(TransferLearningBudget? budget = null, Action<string>? log = null)
    {
        var b = budget ?? TransferLearningBudget.Full;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(b.Seeds, nameof(budget));
        var clock = Stopwatch.StartNew();
        // Each line gives its own step's time; the result keeps the whole experiment's.
        var step = Stopwatch.StartNew();
        string Lap()
        {
            var seconds = step.Elapsed.TotalSeconds;
            step.Restart();
            return seconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " s";
        }

        // 1. Pretrain on the RGB orientation task.
        var (srcX, srcY) = SyntheticBars.Orientation(b.PretrainImages, b.Seed);
        var (srcTestX, srcTestY) = SyntheticBars.Orientation(Math.Max(100, b.PretrainImages / 5), b.Seed + 1);
        manual_seed(b.Seed);
        var source = SourceNetwork();
        var pre = Train(source, srcX, srcY, srcTestX, srcTestY, b.PretrainEpochs, b, b.Seed);
        log?.Invoke($"pretrained on {b.PretrainImages} RGB images, {b.PretrainEpochs} epochs: accuracy {pre[^1].TestAccuracy:P1} on held-out images ({Lap()})");

        // 2. Per seed: two identical target networks (one gets the transfer), this seed's images and batch order.
        var (testX, testY) = SyntheticBars.Pairs(b.TestImages, b.Seed + 3);
        var runs = new List<FineTuneRun>();
        nn.Module<Tensor, Tensor>? first = null;
        TransferReport? report = null;
        Tensor? stem = null;
        for (int k = 0; k < b.Seeds; k++)
        {
            int seed = b.Seed + (1000 * (k + 1));
            manual_seed(seed);
            var transferred = TargetNetwork();
            manual_seed(seed);
            var scratch = TargetNetwork();
            var r = Graft.Transfer.WeightTransfer.Modules(source, transferred);
            if (k == 0)
            {
                (first, report, stem) = (transferred, r, transferred.state_dict()["conv1.weight"].detach().clone());
            }

            // 3. Fine-tune both on the same few grayscale images, same budget, same batch order.
            var (x, y) = SyntheticBars.Pairs(b.TrainImages, seed + 2);
            step.Restart();
            var tHist = Train(transferred, x, y, testX, testY, b.Epochs, b, seed + 4);
            var sHist = Train(scratch, x, y, testX, testY, b.Epochs, b, seed + 4);
            runs.Add(new FineTuneRun(seed, tHist, sHist));
            log?.Invoke($"seed {k + 1} of {b.Seeds}: fine-tuned both networks, {b.Epochs} epochs on {b.TrainImages} images: transferred {tHist[^1].TestAccuracy:P1}, from scratch {sHist[^1].TestAccuracy:P1} ({Lap()})");
        }
        return new TransferLearningResult(pre[^1].TestAccuracy, source, first!, report!, stem!, runs, clock.Elapsed);
    }

    /// <summary>
    /// Trains with Adam and cross-entropy, shuffling with a generator seeded by <paramref name="seed"/> (so two runs
    /// with the same seed see the same batches), and evaluates on the test set after every epoch (and before the first).
    /// </summary>
    public static IReadOnlyList<EpochStats> Train(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y, Tensor testX, Tensor testY, int epochs, TransferLearningBudget budget, int seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(budget);
        var history = new List<EpochStats>();
        var (l0, _) = Evaluate(model, x, y);
        var (tl0, ta0) = Evaluate(model, testX, testY);
        history.Add(new EpochStats(0, l0, tl0, ta0));
        using var opt = optim.Adam(model.parameters(), budget.LearningRate);
        using var gen = new Generator((ulong)seed);
        long n = x.shape[0];
        for (int epoch = 1; epoch <= epochs; epoch++)
        {
            model.train();
            double sum = 0;
            int batches = 0;
            using var order = randperm(n, generator: gen);
            for (long start = 0; start < n; start += budget.BatchSize)
            {
                using var scope = NewDisposeScope();
                var idx = order.narrow(0, start, Math.Min(budget.BatchSize, n - start));
                opt.zero_grad();
                var loss = nn.functional.cross_entropy(model.forward(x.index_select(0, idx)), y.index_select(0, idx));
                loss.backward();
                opt.step();
                sum += loss.item<float>();
                batches++;
            }
            var (tl, ta) = Evaluate(model, testX, testY);
            history.Add(new EpochStats(epoch, sum / batches, tl, ta));
        }
        model.eval();
        return history;
    }

    private static (double Loss, double Accuracy) Evaluate(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y)
    {
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var logits = model.forward(x);
        double loss = nn.functional.cross_entropy(logits, y).item<float>();
        double acc = logits.argmax(1).eq(y).to(ScalarType.Float32).mean().item<float>();
        return (loss, acc);
    }
}
