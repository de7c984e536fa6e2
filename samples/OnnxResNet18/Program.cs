// ML.NET ships an ImageNet-pretrained ResNet-18 as an ONNX file (NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18,
// exported by CNTK: tensors called Parameter91, Constant98 …). ML.NET cannot retrain it and TorchSharp cannot read it.
// Graft matches its layers to a TorchVision .NET ResNet by the computation graph (no names, no option) and the model
// fine-tunes from there.
//
//   dotnet run --project samples/OnnxResNet18 [-- PATH/TO/ResNet18.onnx] [--quick]
using System.Reflection;
using Graft.Transfer;
using TorchSharp;
using static TorchSharp.torch;

bool quick = args.Contains("--quick");
var onnx = args.FirstOrDefault(a => a.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
    ?? typeof(Program).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "MlNetResNet18Onnx").Value!;
if (!File.Exists(onnx))
{
    Console.Error.WriteLine($"{onnx} not found: restore the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18, or pass the .onnx path.");
    return 2;
}

// 1. The model to train: TorchVision's ResNet-18 with the ONNX network's [2, 2, 2, 3] blocks, a 1-channel stem and 10 classes.
manual_seed(1);
var model = GrayResNet.Create(layer4Blocks: 3, classes: 10);

// 2. One call: ONNX file → live module. The stem's three input channels are summed into one, the new head keeps its init.
var report = WeightTransfer.IntoModule(onnx, model);
var s = report.Summary;
Console.WriteLine($"1. {Path.GetFileName(onnx)} → TorchVision ResNet [2, 2, 2, 3], 1 channel, 10 classes");
Console.WriteLine($"2. {s.Targets} tensors: {s.Copied} copied, {s.Adapted} adapted, {s.Kept} kept; {s.UnusedSources} source tensors unused; verdict: {s.VerdictText}");
foreach (var note in report.Notes.Where(n => !n.StartsWith("pair:", StringComparison.Ordinal)))
{
    Console.WriteLine($"   {note}");
}
foreach (var pair in report.Notes.Where(n => n.StartsWith("pair:", StringComparison.Ordinal)).Take(quick ? 3 : int.MaxValue))
{
    Console.WriteLine($"   {pair}");
}

// 3. It trains: a few steps on random gray images (stand-ins for your data) lower the loss.
var x = rand(8, 1, 64, 64) * 255 - 114;
var y = randint(0, 10, new long[] { 8 });
var optimizer = optim.Adam(model.parameters(), lr: 1e-4);
model.train();
float first = 0, last = 0;
for (int step = 0; step < (quick ? 3 : 20); step++)
{
    optimizer.zero_grad();
    var loss = nn.functional.cross_entropy(model.call(x), y);
    loss.backward();
    optimizer.step();
    last = loss.item<float>();
    first = step == 0 ? last : first;
}
Console.WriteLine($"3. fine-tuning runs: loss {first:F3} → {last:F3} after {(quick ? 3 : 20)} steps");
return s.Verdict == TransferVerdict.CompleteApartFromNewHead ? 0 : 1;

/// <summary>TorchVision .NET's ResNet-18 rebuilt as a Sequential of its named children (torchvision's names).</summary>
internal static class GrayResNet
{
    /// <summary>
    /// <paramref name="layer4Blocks"/> basic blocks in layer4 (a third is another ResNet-18's TorchVision BasicBlock, since
    /// TorchSharp's BasicBlock class is internal), a 1-channel stem and <paramref name="classes"/> outputs.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Create(int layer4Blocks, int classes)
    {
        var resnet = torchvision.models.resnet18(num_classes: classes);
        var children = resnet.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        for (int b = 2; b < layer4Blocks; b++)
        {
            var donor = torchvision.models.resnet18();
            var block = (nn.Module<Tensor, Tensor>)((TorchSharp.Modules.Sequential)donor.named_children().Single(c => c.name == "layer4").module)
                .named_children().Single(c => c.name == "1").module;
            ((TorchSharp.Modules.Sequential)children["layer4"]).append(b.ToString(System.Globalization.CultureInfo.InvariantCulture), block);
        }
        children["conv1"] = nn.Conv2d(1, 64, 7, stride: 2, padding: 3, bias: false);
        string[] order = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc"];
        return nn.Sequential(order.Select(name => (name, children[name])).ToArray());
    }
}
