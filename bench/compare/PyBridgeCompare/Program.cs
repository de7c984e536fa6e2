// Loads one checkpoint into a fresh TorchVision ResNet-50 with Graft (WeightTransfer.IntoModule) or TorchSharp.PyBridge
// (load_py / load_safetensors, strict).
//   PyBridgeCompare graft|pybridge FILE CLASSES [REPETITIONS]
//       one tool: prints "ok MEDIAN_MS [detail]" or "refused TYPE: MESSAGE" (the first load is a warm-up when
//       REPETITIONS > 1). The script runs it with REPETITIONS 1 under /usr/bin/time for the peak memory of one load.
//   PyBridgeCompare interleaved FILE CLASSES ROUNDS
//       both tools in one process, as an app meets them: a warm-up load of each, then ROUNDS rounds in which each
//       tool loads once (the order alternating round by round), a full GC before every load, the model built before
//       the clock; prints "graft MEDIAN_MS pybridge MEDIAN_MS ratio R" (R = Graft's median / PyBridge's).
// Exit code 0 whether the load worked or was refused: a refusal is a result; only a crash (the process dying) is not.
using System.Diagnostics;
using System.Globalization;
using Graft.Transfer;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: PyBridgeCompare graft|pybridge|interleaved FILE CLASSES [REPETITIONS]");
    return 64;
}
string tool = args[0], file = args[1];
int classes = int.Parse(args[2], CultureInfo.InvariantCulture);
int reps = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 1;
var inv = CultureInfo.InvariantCulture;

if (tool == "interleaved")
{
    var times = new Dictionary<string, List<double>> { ["graft"] = [], ["pybridge"] = [] };
    for (int round = -1; round < reps; round++) // round -1: each tool's warm-up
    {
        string[] order = round % 2 == 0 ? ["graft", "pybridge"] : ["pybridge", "graft"];
        foreach (var t in order)
        {
            using var model = torchvision.models.resnet50(num_classes: classes);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            var clock = Stopwatch.StartNew();
            Load(t, file, model);
            clock.Stop();
            if (round >= 0)
            {
                times[t].Add(clock.Elapsed.TotalMilliseconds);
            }
        }
    }
    double graft = Median(times["graft"]), pybridge = Median(times["pybridge"]);
    Console.WriteLine(string.Format(inv, "graft {0:F1} pybridge {1:F1} ratio {2:F2}", graft, pybridge, graft / pybridge));
    return 0;
}

var single = new List<double>();
string detail = "";
for (int i = 0; i < reps + (reps > 1 ? 1 : 0); i++)
{
    using var model = torchvision.models.resnet50(num_classes: classes);
    var clock = Stopwatch.StartNew();
    try
    {
        detail = Load(tool, file, model);
    }
    catch (Exception e)
    {
        Console.WriteLine($"refused {e.GetType().Name}: {e.Message.Split('\n')[0]}");
        return 0;
    }
    if (i > 0 || reps == 1)
    {
        single.Add(clock.Elapsed.TotalMilliseconds);
    }
}
Console.WriteLine(string.Format(inv, "ok {0:F1} {1}", Median(single), detail).TrimEnd());
return 0;

static string Load(string tool, string file, nn.Module model)
{
    if (tool == "graft")
    {
        var s = WeightTransfer.IntoModule(file, model).Summary;
        return $"{s.Copied} copied, {s.Adapted} adapted, {s.Kept} kept, {s.UnusedSources} unused; {s.Verdict}";
    }
    if (file.EndsWith(".safetensors", StringComparison.Ordinal))
    {
        model.load_safetensors(file);
    }
    else
    {
        model.load_py(file);
    }
    return "";
}

static double Median(List<double> values)
{
    values.Sort();
    return values[values.Count / 2];
}
