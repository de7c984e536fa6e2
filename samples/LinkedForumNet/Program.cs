// The forum question's network as a proper nn.Module, with conv_2 linked to conv_1 (see Net.cs).
//
//   dotnet run --project samples/LinkedForumNet            # the question's 300×300 input
//   dotnet run --project samples/LinkedForumNet -- --quick # a 32×32 input (the tests use it)
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

bool quick = args.Contains("--quick");
int size = quick ? 32 : 300;
var inv = CultureInfo.InvariantCulture;
manual_seed(0);
using var net = new Net();

long parameters = net.parameters().Sum(p => p.numel());
var keys = net.state_dict().Keys.Order(StringComparer.Ordinal).ToArray();
Console.WriteLine(string.Format(inv, "parameters: {0:N0}; state_dict: {1}", parameters, string.Join(", ", keys)));

using var x = randn(1, 16, size, size);
using var y = net.forward(x);
Console.WriteLine($"input ({string.Join(", ", x.shape)}) → output ({string.Join(", ", y.shape)})");

// Gradients reach conv_1 through the derived weight: one SGD step on conv_1 changes what conv_2 computes.
using var optimizer = optim.SGD(net.parameters(), learningRate: 1e-3);
optimizer.zero_grad();
using var loss = y.pow(2).mean();
loss.backward();
double grad = net.Conv1Weight.grad!.norm().item<float>();
optimizer.step();
using (no_grad())
{
    using var after = net.forward(x).pow(2).mean();
    Console.WriteLine(string.Format(inv, "|∂L/∂conv_1.weight| = {0:G4}; one SGD step: loss {1:G6} → {2:G6}", grad, loss.item<float>(), after.item<float>()));
}

// Saved and loaded like any module: the file holds conv_1 only, and the link follows the loaded values.
var path = Path.Combine(Path.GetTempPath(), $"linked-forum-net-{Environment.ProcessId}.dat");
try
{
    net.save(path);
    using var copy = new Net();
    copy.load(path);
    using var y1 = net.forward(x);
    using var y2 = copy.forward(x);
    bool same = y1.equal(y2).all().item<bool>();
    Console.WriteLine($"saved and loaded ({new FileInfo(path).Length:N0} bytes): outputs {(same ? "identical" : "DIFFER")}");
    bool ok = parameters == 4640 && keys.SequenceEqual(["conv_1.bias", "conv_1.weight"]) && y.shape.SequenceEqual([1L, 64, size, size]) && grad > 0 && same;
    Console.WriteLine(ok ? "all checks passed" : "a check FAILED");
    return ok ? 0 : 1;
}
finally
{
    File.Delete(path);
}
