// Fine-tune a TorchVision .NET ResNet-18 on grayscale images, starting from a torchvision-format (RGB, 1000-class)
// checkpoint that Graft adapts to a 1-channel stem and a new 4-class head.
//
//   dotnet run --project samples/FineTuneResNet            # about 2½ minutes of CPU time (5 min on a busy 2-core VM)
//   dotnet run --project samples/FineTuneResNet -- --quick # a few seconds: the smallest budget (the tests use it)
//
// Step 1 stands in for a download. A real run would start from torchvision's resnet18-f37072fd.pth (ImageNet); this
// machine cannot download it, so the sample makes a checkpoint of the same format and shapes itself: a TorchVision
// ResNet-18 (3 input channels, 1000 classes) trained briefly on synthetic RGB gratings (8 orientations), saved with
// torchvision's state-dict names as safetensors. Swap in the real file and nothing else changes.
using System.Globalization;
using Graft;
using Graft.Checkpoints;
using Graft.Transfer;
using TorchSharp;
using static TorchSharp.torch;

bool quick = args.Contains("--quick");
var budget = quick
    ? new Budget(PretrainImages: 64, PretrainEpochs: 1, TrainImages: 64, TestImages: 64, Epochs: 1)
    : new Budget(PretrainImages: 1024, PretrainEpochs: 2, TrainImages: 160, TestImages: 400, Epochs: 4);
var inv = CultureInfo.InvariantCulture;
var folder = Directory.CreateTempSubdirectory("graft-sample-");
try
{
    // 1. A torchvision-format checkpoint (see the note at the top).
    manual_seed(1);
    var checkpoint = Path.Combine(folder.FullName, "resnet18-synthetic.safetensors");
    using (var pretrained = torchvision.models.resnet18(num_classes: 1000))
    {
        var (px, py) = Gratings.Make(budget.PretrainImages, channels: 3, classes: 8, seed: 10);
        Training.Fit(pretrained, px, py, budget.PretrainEpochs, learningRate: 1e-3);
        CheckpointFile.Write(checkpoint, pretrained.state_dict().Select(kv => TensorBridge.ToPayload(kv.Key, kv.Value)));
    }
    Console.WriteLine($"1. checkpoint: {Path.GetFileName(checkpoint)} — TorchVision ResNet-18, 3-channel stem, 1000 classes, "
        + $"pretrained on {budget.PretrainImages} synthetic RGB gratings (a stand-in for torchvision's ImageNet file)");

    // 2. The new model: TorchVision's ResNet-18 with a 1-channel stem and a 4-class head. TorchSharp's ResNet keeps its
    //    layers in read-only fields, so the model is rebuilt as a Sequential of the same named children: the state-dict
    //    names stay torchvision's (conv1.weight, layer1.0.bn1.running_mean, fc.bias …).
    manual_seed(2);
    var model = GrayResNet18.Create(classes: 4);
    var (trainX, trainY) = Gratings.Make(budget.TrainImages, channels: 1, classes: 4, seed: 20);
    var (testX, testY) = Gratings.Make(budget.TestImages, channels: 1, classes: 4, seed: 30);

    var report = WeightTransfer.IntoModule(checkpoint, model);
    Console.WriteLine("2. transfer into ResNet-18 (1 input channel, 4 classes):");
    foreach (var t in report.Targets.Where(t => t.Status != TargetStatus.Copied))
    {
        Console.WriteLine($"   {t.Name,-12} {PolicyWords.Word(t.Status),-8} {t.Reason}");
    }
    var s = report.Summary;
    Console.WriteLine($"   {s.Targets} tensors: {s.Copied} copied, {s.Adapted} adapted, {s.Kept} kept; {s.UnusedSources} source tensors unused");
    Console.WriteLine($"   verdict: {s.VerdictText}");

    // 3. Fine-tune on the grayscale task.
    double before = Training.Accuracy(model, testX, testY);
    Training.Fit(model, trainX, trainY, budget.Epochs, learningRate: 1e-3);
    double after = Training.Accuracy(model, testX, testY);
    Console.WriteLine(string.Format(inv, "3. fine-tuned on {0} grayscale images, {1} epoch(s): test accuracy {2:P1} before, {3:P1} after ({4} held-out images, chance 25 %)",
        budget.TrainImages, budget.Epochs, before, after, budget.TestImages));
    return s.Verdict == TransferVerdict.CompleteApartFromNewHead ? 0 : 1;
}
finally
{
    folder.Delete(recursive: true);
}

/// <summary>How much data and training each step gets.</summary>
internal sealed record Budget(int PretrainImages, int PretrainEpochs, int TrainImages, int TestImages, int Epochs);
