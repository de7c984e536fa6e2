using BenchmarkDotNet.Running;

namespace Graft.Benchmarks;

internal static class Program
{
    public static int Main(string[] args)
    {
        // `make-resnet50 PATH [inputs] [classes]` writes the synthetic checkpoint the side-by-side scripts use.
        if (args.Length >= 2 && args[0] == "make-resnet50")
        {
            int inputs = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 3;
            int classes = args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 1000;
            ResNet50Checkpoint.Write(args[1], inputs, classes, seed: inputs * 1000 + classes);
            return 0;
        }
        // `make-stacked PATH COPIES [maxShardMB]`: COPIES ResNet-50 layouts in one checkpoint, generated while written
        // (~102 MB each; a `*.safetensors.index.json` path gives shards of at most maxShardMB, default 1000).
        if (args.Length >= 3 && args[0] == "make-stacked")
        {
            int copies = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
            long shardMb = args.Length > 3 ? long.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 1000;
            long bytes = StackedCheckpoint.Write(args[1], copies, shardMb * 1_000_000);
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{args[1]}: {bytes / 1_000_000} MB of tensors"));
            return 0;
        }
        // `make-llama FOLDER LAYERS [hidden heads kvHeads intermediate]`: a 7B-shaped Llama-family checkpoint (bf16, sharded,
        // with config.json), generated while written (issue 25's scale case; bench/compare/llm-grow-vs-cp.sh).
        if (args.Length >= 3 && args[0] == "make-llama")
        {
            int[] n = args.Skip(2).Select(a => int.Parse(a, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            long bytes = n.Length >= 5 ? LlamaCheckpoint.Write(args[1], n[0], n[1], n[2], n[3], n[4]) : LlamaCheckpoint.Write(args[1], n[0]);
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{args[1]}: {bytes / 1_000_000} MB of tensors"));
            return 0;
        }
        // `load PATH [reps]`: median time to load every tensor into TorchSharp; `read PATH [reps]`: to read the file (the floor).
        if (args.Length >= 2 && args[0] is "load" or "read")
        {
            int reps = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 7;
            return LoadBenchmark.Run(args[0], args[1], reps);
        }
        // `numerics-cold [processes]`: the numerics self-check's cost in fresh processes (NumericsColdRun).
        if (args.Length >= 1 && args[0] == "numerics-cold")
        {
            return NumericsColdRun.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 9);
        }
        if (args.Length >= 2 && args[0] == "numerics-cold-child")
        {
            return NumericsColdRun.Child(args[1]);
        }
        if (args.Length >= 1 && args[0] == "linked-ab")
        {
            return LinkedAbRun.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 40);
        }
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
