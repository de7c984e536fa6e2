// Loads one checkpoint into a fresh TorchVision ResNet-50 with Graft (WeightTransfer.IntoModule) or TorchSharp.PyBridge
// (load_py / load_safetensors, strict), and prints one line: "ok MEDIAN_MS [detail]" or "refused TYPE: MESSAGE".
//   PyBridgeCompare graft|pybridge FILE CLASSES [REPETITIONS]
// Loading time only (the model is built before the clock starts); the first load is a warm-up when REPETITIONS > 1.
// The script runs it once more under /usr/bin/time for peak memory. Exit code 0 whether the load worked or was refused:
// a refusal is a result; only a crash (the process dying) is not.
using System.Diagnostics;
using System.Globalization;
using Graft.Transfer;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: PyBridgeCompare graft|pybridge FILE CLASSES [REPETITIONS]");
    return 64;
}
string tool = args[0], file = args[1];
int classes = int.Parse(args[2], CultureInfo.InvariantCulture);
int reps = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 1;
var times = new List<double>();
string detail = "";
for (int i = 0; i < reps + (reps > 1 ? 1 : 0); i++)
{
    using var model = torchvision.models.resnet50(num_classes: classes);
    var clock = Stopwatch.StartNew();
    try
    {
        if (tool == "graft")
        {
            var s = WeightTransfer.IntoModule(file, model).Summary;
            detail = $"{s.Copied} copied, {s.Adapted} adapted, {s.Kept} kept, {s.UnusedSources} unused; {s.Verdict}";
        }
        else if (file.EndsWith(".safetensors", StringComparison.Ordinal))
        {
            model.load_safetensors(file);
        }
        else
        {
            model.load_py(file);
        }
    }
    catch (Exception e)
    {
        Console.WriteLine($"refused {e.GetType().Name}: {e.Message.Split('\n')[0]}");
        return 0;
    }
    if (i > 0 || reps == 1)
    {
        times.Add(clock.Elapsed.TotalMilliseconds);
    }
}
times.Sort();
Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "ok {0:F1} {1}", times[times.Count / 2], detail).TrimEnd());
return 0;
