using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Graft.Checkpoints;
using Graft.Demo;
using Graft.Numerics;
using Graft.Transfer;
using Graft.Cli.Visual;
using SkiaSharp;
using Spectre.Console;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Graft.Cli.Commands;

/// <summary>
/// <c>graft demo</c>: the main job on a built-in example. A small RGB network is carried into a grayscale network with
/// wider, larger-kernel layers and another head; the report is printed and the promises checked numerically.
/// </summary>
internal static class DemoCommand
{
    public static Command Create(CliContext ctx)
    {
        var keep = new Option<DirectoryInfo?>("--out") { Description = "Keep the demo's checkpoints and report in this folder (default: a temporary folder, deleted)." };
        var quick = new Option<bool>("--quick") { Description = "A smaller training budget (less data, fewer epochs) for a fast check; the numbers then say little." };
        var cmd = new Command("demo", "Run a transfer on a built-in example and verify it numerically; then pretrain a small CNN, transfer it into another architecture and fine-tune it against a from-scratch copy on the same data and budget (table, learning-curves.png).") { keep, quick };
        cmd.SetAction(parse =>
        {
            var dir = parse.GetValue(keep)?.FullName;
            bool temporary = dir is null;
            dir ??= Path.Combine(Path.GetTempPath(), "graft-demo-" + Guid.NewGuid().ToString("N")[..8]);
            Directory.CreateDirectory(dir);
            try
            {
                // The demo trains and compares convolutions: make sure this machine's kernels compute right first.
                NumericsGuard.Ensure();
                var failed = new List<string>();
                Run(ctx, dir, failed);
                ctx.Out.WriteLine();
                var linked = LinkedDemo.Run(ctx.Out);
                if (linked.ParameterCount != (16 * 32 * 9) + 32 || !(linked.WeightGradNorm > 0) || !double.IsFinite(linked.WeightGradNorm))
                {
                    failed.Add($"linked layers: {linked.ParameterCount:N0} parameters (expected 4,640), gradient norm {linked.WeightGradNorm}");
                }
                ctx.Out.WriteLine();
                var growth = GrowthDemo.Run(ctx.Out);
                failed.AddRange(growth.Failures.Select(f => "growth: " + f));
                ctx.Out.WriteLine();
                WhyItMatters(ctx, dir, parse.GetValue(quick) ? TransferLearningBudget.Quick : TransferLearningBudget.Full, temporary, failed);
                return Conclude(ctx, failed);
            }
            finally
            {
                if (temporary)
                {
                    Directory.Delete(dir, recursive: true);
                }
            }
        });
        return cmd;
    }

    /// <summary>
    /// The demo's exit code: 0 when every promise held; otherwise 7, with one line on standard error naming each promise
    /// that failed and its measured difference (the <paramref name="failed"/> entries the checks made).
    /// </summary>
    internal static int Conclude(CliContext ctx, IReadOnlyList<string> failed)
    {
        if (failed.Count == 0)
        {
            return ExitCodes.Ok;
        }
        ctx.Err.WriteLine($"graft: demo verification failed: {string.Join("; ", failed)}. `graft doctor` shows this machine's numerics.");
        return ExitCodes.VerificationFailed;
    }

    private static void Run(CliContext ctx, string dir, List<string> failed)
    {
        var clock = Stopwatch.StartNew();
        var o = ctx.Out;
        o.WriteLine("Graft demo: carry an RGB network into a grayscale one with wider, larger-kernel layers and a new head.");
        o.WriteLine();
        manual_seed(2024);
        var source = SmallCnn.Create(3, 16, 3, 32, 10);
        var target = SmallCnn.Create(1, 24, 5, 32, 5);
        // Pretend the source was trained: BatchNorm statistics other than the defaults make the check meaningful.
        SmallCnn.RandomizeBatchNormStatistics(source);
        o.WriteLine("source: conv1 3→16 k3 · bn1 · conv2 16→32 k3 · bn2 · fc 32→10");
        o.WriteLine("target: conv1 1→24 k5 · bn1 · conv2 24→32 k3 · bn2 · fc 32→5");
        var srcPath = Path.Combine(dir, "source.safetensors");
        var tplPath = Path.Combine(dir, "template.safetensors");
        var outPath = Path.Combine(dir, "transferred.safetensors");
        CheckpointFile.Write(srcPath, source.state_dict().Select(kv => TensorBridge.ToPayload(kv.Key, kv.Value)));
        CheckpointFile.Write(tplPath, target.state_dict().Select(kv => TensorBridge.ToPayload(kv.Key, kv.Value)));
        o.WriteLine($"wrote {srcPath} and {tplPath}");
        o.WriteLine();

        var report = Graft.Transfer.WeightTransfer.Files(srcPath, tplPath, outPath);
        ReportView.Render(ctx, report);
        // Like every other file the demo writes into --out DIR: atomically, never through a link or over a special file.
        AtomicFile.Write(Path.Combine(dir, "report.json"), s => s.Write(System.Text.Encoding.UTF8.GetBytes(report.ToJson())));
        o.WriteLine();

        // Load the result into a fresh target network and check what the transforms promise.
        var result = SmallCnn.Create(1, 24, 5, 32, 5);
        using (var reader = CheckpointFile.Open(outPath))
        {
            StateDictCheckpoint.LoadInto(result, reader.Tensors.Select(t => TensorPayload.FromCheckpoint(reader, t)));
        }
        source.eval();
        result.eval();
        using var scope = NewDisposeScope();
        using var g = new Generator(7);
        var gray = randn(new long[] { 4, 1, 16, 16 }, generator: g);
        var rgb = cat([gray, gray, gray], 1);
        var seq = (Sequential)result;
        var srcSeq = (Sequential)source;
        var stemSource = ((nn.Module<Tensor, Tensor>)srcSeq[0]).forward(rgb);
        var stemTarget = ((nn.Module<Tensor, Tensor>)seq[0]).forward(gray).narrow(1, 0, 16);
        double stemDiff = (stemSource - stemTarget).abs().max().item<float>();
        var featSource = Features(srcSeq, rgb);
        var featTarget = Features(seq, gray);
        double featDiff = (featSource - featTarget).abs().max().item<float>();
        double scale = featSource.abs().max().item<float>();
        double stemScale = stemSource.abs().max().item<float>();
        // Both networks compute in float32 and sum in other orders (27 products of summed weights against 81): a few
        // float32 ulps of the largest value apart (measured: stem 4.8e-7 of values up to ~4, features 3e-8). The bound
        // is 16 ulps of the largest value, 16 × 2^-23 ≈ 1.9e-6 of it: a float16 round trip or a wrong channel fails.
        const double ulps16 = 16.0 / (1 << 23);
        double stemBound = ulps16 * stemScale, featBound = ulps16 * scale;
        bool ok = stemDiff <= stemBound && featDiff <= featBound;
        if (!ok)
        {
            failed.Add($"transfer: the transferred network does not compute what the source did (stem max |diff| {stemDiff:0.###e+0}, bound {stemBound:0.###e+0}; features {featDiff:0.###e+0}, bound {featBound:0.###e+0})");
        }
        o.WriteLine("Checks (a gray image x; the source sees it as RGB [x, x, x]):");
        o.WriteLine($"  stem: the target's first 16 maps on x vs the source's on [x,x,x]  max |diff| = {stemDiff:0.###e+0}");
        o.WriteLine($"  features before the head (after bn2, relu, pool)            max |diff| = {featDiff:0.###e+0} (values up to {scale:0.###})");
        o.WriteLine("  so the transferred network computes what the pretrained one did, up to the new head,");
        o.WriteLine("  even though conv1 and bn1 grew from 16 to 24 channels: the new inputs of conv2 start at zero.");
        o.WriteLine(ok ? "verified." : "VERIFICATION FAILED.");
        o.WriteLine($"(this step {clock.Elapsed.TotalSeconds:0.0} s)");
    }

    /// <summary>Pretrain, transfer, fine-tune against from scratch; the table on standard output, the curves as a PNG.</summary>
    private static void WhyItMatters(CliContext ctx, string dir, TransferLearningBudget budget, bool temporary, List<string> failed)
    {
        var o = ctx.Out;
        o.WriteLine("Why it matters: pretrain, transfer, fine-tune against the same network trained from scratch.");
        o.WriteLine($"  pretraining task: {budget.PretrainImages} RGB 16×16 images of one bar, 8 classes (its orientation).");
        o.WriteLine($"  target task: grayscale 16×16 images of two bars, 4 classes ({string.Join(" ", SyntheticBars.PairNames)}); {budget.TrainImages} training images, {budget.TestImages} held out.");
        o.WriteLine("  source: conv1 3→16 k3 · conv2 16→32 · conv3 32→64 · fc 64→8 (BatchNorm, max-pool, global average pool)");
        o.WriteLine("  target: conv1 1→24 k5 · conv2 24→48 · conv3 48→64 · fc 64→4");
        o.WriteLine($"  both target networks: same initialisation (seed), same images, same batch order, Adam lr {budget.LearningRate.ToString(CultureInfo.InvariantCulture)}, batch {budget.BatchSize}, {budget.Epochs} epochs.");
        o.WriteLine($"  {budget.Seeds} fine-tuning seeds: each draws its own {budget.TrainImages} training images, initialisation and batch order, shared by its two arms.");
        var r = TransferLearningDemo.Run(budget, line => o.WriteLine("  " + line));
        var s = r.TransferReport.Summary;
        o.WriteLine($"  transfer: {s.Copied} copied, {s.Adapted} adapted, {s.Kept} kept from the target's init (the 4-class head), {s.UnusedSources} source tensors unused.");

        o.WriteLine($"test accuracy on {budget.TestImages} held-out images, mean ± sample std over {budget.Seeds} seeds:");
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn(new TableColumn("epoch").RightAligned())
            .AddColumn(new TableColumn("transferred").RightAligned())
            .AddColumn(new TableColumn("from scratch").RightAligned())
            .AddColumn(new TableColumn("train loss: transferred").RightAligned())
            .AddColumn(new TableColumn("from scratch").RightAligned());
        foreach (var (epoch, t, z) in r.AccuracyByEpoch)
        {
            table.AddRow(epoch.ToString(CultureInfo.InvariantCulture), PM(t), PM(z),
                F(r.Runs.Average(run => run.Transferred[epoch].TrainLoss)), F(r.Runs.Average(run => run.Scratch[epoch].TrainLoss)));
        }
        ctx.Console.Write(table);
        var (_, ft, fz) = r.AccuracyByEpoch[^1];
        var gap = r.Gap;
        o.WriteLine($"after {budget.Epochs} epochs: transferred {PM(ft)}, from scratch {PM(fz)}; same-seed gap {Points(gap.Final)}, the transferred network ahead on {r.SeedsAhead} of {budget.Seeds} seeds.");
        o.WriteLine($"averaged over epochs 1-{budget.Epochs} (the area under each learning curve): gap {Points(gap.OverEpochs)}.");
        o.WriteLine(gap.OverEpochs.Mean > 2 * gap.OverEpochs.Std / Math.Sqrt(gap.OverEpochs.Count)
            ? "so on these images transfer pays: the mean gap is more than twice its standard error."
            : "so this run does not show that transfer pays: the mean gap is within twice its standard error.");
        o.WriteLine("(epoch 0 is before fine-tuning: both heads are the target's own random init, so both start near chance;");
        o.WriteLine(" single seeds differ by several points, and a CPU whose kernels round differently prints other single-seed numbers:");
        o.WriteLine(" the mean over seeds and its spread are what to compare.)");
        foreach (var run in r.Runs)
        {
            foreach (var (name, history) in new[] { ("transferred", run.Transferred), ("from scratch", run.Scratch) })
            {
                if (history.FirstOrDefault(e => !double.IsFinite(e.TrainLoss) || !double.IsFinite(e.TestLoss)) is { } bad)
                {
                    failed.Add($"training: the {name} network's loss is not finite from epoch {bad.Epoch} (seed {run.Seed})");
                }
            }
        }

        var curves = Path.Combine(dir, "learning-curves.png");
        var blue = new SKColor(31, 119, 180);
        var orange = new SKColor(255, 127, 14);
        string mean = $" (mean of {budget.Seeds})";
        using (var acc = Plot.Lines("test accuracy on the target task", "epoch",
            [new("transferred" + mean, blue, [.. r.AccuracyByEpoch.Select(e => e.Transferred.Mean)]), new("from scratch" + mean, orange, [.. r.AccuracyByEpoch.Select(e => e.Scratch.Mean)])], 0, 1))
        using (var loss = Plot.Lines("training loss (cross-entropy)", "epoch",
            [new("transferred" + mean, blue, [.. Enumerable.Range(0, budget.Epochs + 1).Select(e => r.Runs.Average(run => run.Transferred[e].TrainLoss))]),
             new("from scratch" + mean, orange, [.. Enumerable.Range(0, budget.Epochs + 1).Select(e => r.Runs.Average(run => run.Scratch[e].TrainLoss))])]))
        using (var both = Plot.Beside(acc, loss))
        {
            Png.Write(curves, both);
        }
        var filters = Path.Combine(dir, "filters.png");
        using (var scope = NewDisposeScope())
        {
            var src = r.Source.state_dict()["conv1.weight"];
            int px = FilterGrid.AutoScale(5);
            using var grid = Png.Panels([
                (FilterGrid.Render(src, px), "pretrained conv1.weight (16, 3, 3, 3)", "RGB; grey = 0"),
                (FilterGrid.Render(r.StemAfterTransfer, px), "transferred conv1.weight (24, 1, 5, 5)", "before fine-tuning; grey = 0"),
            ]);
            Png.Write(filters, grid);
        }
        var pretrained = Path.Combine(dir, "pretrained.safetensors");
        CheckpointFile.Write(pretrained, r.Source.state_dict().Select(kv => TensorBridge.ToPayload(kv.Key, kv.Value)));
        o.WriteLine(temporary
            ? "(pass --out DIR to keep learning-curves.png, filters.png and the checkpoints)"
            : $"wrote {curves}, {filters} and {pretrained}");
        o.WriteLine($"(this step {r.Elapsed.TotalSeconds:0.0} s)");
    }

    private static string F(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);

    private static string PM(MeanStd v) => (100 * v.Mean).ToString("0.0", CultureInfo.InvariantCulture) + " ± " + (100 * v.Std).ToString("0.0", CultureInfo.InvariantCulture) + " %";

    private static string Points(MeanStd v) => (100 * v.Mean).ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture) + " ± " + (100 * v.Std).ToString("0.0", CultureInfo.InvariantCulture) + " points";

    private static Tensor Features(Sequential net, Tensor x)
    {
        var h = x;
        for (int i = 0; i < 8; i++)
        {
            h = ((nn.Module<Tensor, Tensor>)net[i]).forward(h);
        }
        return h;
    }
}
