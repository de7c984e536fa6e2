using Graft.Checkpoints;

namespace Graft.Fuzz;

/// <summary>A valid input the mutations start from.</summary>
internal sealed record Seed(string Format, string Name, byte[] Bytes);

/// <summary>
/// Valid seed inputs for every format in <see cref="CheckpointFile.Formats"/>: files each writable format writes itself
/// from a few synthetic tensor sets, plus the checked-in fixtures listed in <see cref="Fixtures"/>. A new writable format
/// is covered with no change here; a read-only one needs one line in <see cref="Fixtures"/>.
/// </summary>
internal static class SeedCorpus
{
    /// <summary>Checked-in valid files per format, as (folder under the repository root, file patterns).</summary>
    public static IReadOnlyDictionary<string, (string Folder, string[] Patterns)> Fixtures { get; } =
        new Dictionary<string, (string, string[])>(StringComparer.Ordinal)
        {
            ["pytorch"] = ("tests/fixtures/pytorch", ["*.pt", "*.pth"]),
            // external.onnx is left out: a mutated copy in a temporary folder has no data file beside it.
            ["onnx"] = ("tests/fixtures/onnx", ["tiny.onnx", "typed.onnx"]),
        };

    /// <summary>
    /// Formats the one-file mutation harness cannot exercise, each with the reason; everything else in
    /// <see cref="CheckpointFile.Formats"/> is fuzzed, so a new format is covered unless it is listed here on purpose.
    /// </summary>
    public static IReadOnlyDictionary<string, string> NotFuzzed { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["safetensors-sharded"] = "an index over several files; its shards are safetensors files (fuzzed as such) and the index's own rules have one named test each",
    };

    /// <summary>The formats the harness fuzzes: every registered format not in <see cref="NotFuzzed"/>.</summary>
    public static IReadOnlyList<ICheckpointFormat> Formats => CheckpointFile.Formats.Where(f => !NotFuzzed.ContainsKey(f.Name)).ToList();

    /// <summary>Every seed of every registered format, in a stable order.</summary>
    public static List<Seed> All(string repositoryRoot)
    {
        var seeds = new List<Seed>();
        foreach (var format in Formats)
        {
            seeds.AddRange(For(format, repositoryRoot));
        }
        return seeds;
    }

    /// <summary>The seeds of one format; throws when a format has none, so a new format cannot be silently unfuzzed.</summary>
    public static List<Seed> For(ICheckpointFormat format, string repositoryRoot)
    {
        var seeds = new List<Seed>();
        if (format.CanWrite)
        {
            seeds.AddRange(Generated(format));
        }
        if (Fixtures.TryGetValue(format.Name, out var fixtures))
        {
            var folder = Path.Combine(repositoryRoot, fixtures.Folder);
            foreach (var file in fixtures.Patterns.SelectMany(p => Directory.GetFiles(folder, p)).Order(StringComparer.Ordinal))
            {
                seeds.Add(new Seed(format.Name, Path.GetFileName(file), File.ReadAllBytes(file)));
            }
        }
        if (seeds.Count == 0)
        {
            throw new InvalidOperationException(
                $"Format '{format.Name}' has no fuzz seeds: it cannot write, and SeedCorpus.Fixtures lists no files for it. Add one line there.");
        }
        return seeds;
    }

    /// <summary>Synthetic tensor sets written by the format's own writer: dtypes, scalars, empty tensors, metadata.</summary>
    private static IEnumerable<Seed> Generated(ICheckpointFormat format)
    {
        var sets = new (string Name, TensorPayload[] Tensors, Dictionary<string, string>? Metadata)[]
        {
            ("mixed", [
                Payload("conv.weight", DType.F32, 2, 3, 1, 1),
                Payload("conv.bias", DType.F32, 2),
                Payload("bn.num_batches_tracked", DType.I64),
                Payload("half", DType.F16, 2, 2),
                Payload("brain", DType.BF16, 3),
                Payload("mask", DType.Bool, 4),
                Payload("bytes", DType.U8, 5),
                Payload("double", DType.F64, 1, 2),
                Payload("small", DType.I8, 3),
                Payload("short", DType.I16, 2),
                Payload("int", DType.I32, 2),
                Payload("empty", DType.F32, 0),
                Payload("empty2d", DType.F32, 3, 0),
            ], null),
            ("metadata", [Payload("w", DType.F32, 4, 2), Payload("b", DType.F32, 4)], new() { ["format"] = "pt", ["note"] = "seed" }),
            ("one", [Payload("x", DType.F32, 8)], null),
            ("none", [], null),
            // Hostile-input categories of issue 11: names a terminal would act on, names near the length limits, and
            // headers of many small tensors (memory must follow the header, not the row count).
            ("control-characters", [Payload("a\u001b]0;owned\u0007\u001b[2J.weight", DType.F32, 2), Payload("b\nforged\u202e.bias", DType.F32, 1)],
                new() { ["note\u001b[31m"] = "red\u0007" }),
            ("long-name", [Payload(new string('x', 10_000), DType.F32, 2), Payload(new string('é', 300) + ".weight", DType.U8, 1)], null),
            ("many-tensors", [.. Enumerable.Range(0, 2_000).Select(i => Payload($"layer{i}.weight", DType.F32, 0))], null),
        };
        var dir = Directory.CreateTempSubdirectory("graft-fuzz-seed-");
        try
        {
            foreach (var (name, tensors, metadata) in sets)
            {
                var path = Path.Combine(dir.FullName, name + FuzzTarget.Extension(format));
                try
                {
                    format.Write(path, tensors, metadata);
                }
                catch (Exception e) when (e is ArgumentException or NotSupportedException)
                {
                    // A format that cannot hold some dtype or metadata still gets the other sets.
                    continue;
                }
                yield return new Seed(format.Name, $"generated-{name}", File.ReadAllBytes(path));
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static TensorPayload Payload(string name, DType dtype, params long[] dims)
    {
        var shape = new Shape(dims);
        var bytes = new byte[shape.ElementCount * dtype.ElementSize()];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (byte)(i * 37 + name.Length);
        }
        if (dtype == DType.Bool)
        {
            for (var i = 0; i < bytes.Length; i++)
            {
                bytes[i] &= 1;
            }
        }
        return TensorPayload.FromBytes(name, dtype, shape, bytes);
    }

    /// <summary>The repository root: the folder holding Graft.slnx, above the current folder or the binaries.</summary>
    public static string FindRepositoryRoot()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Graft.slnx")))
                {
                    return dir.FullName;
                }
            }
        }
        throw new InvalidOperationException("Graft.slnx not found above " + Environment.CurrentDirectory + " or " + AppContext.BaseDirectory);
    }
}
