using System.Globalization;

/// <summary>The command line: sizes, seeds, the recipe and the outputs.</summary>
internal sealed record Options(
    IReadOnlyList<int> Sizes, IReadOnlyList<int> SeedList, Recipe Recipe, int Size, int TestPerClass, int CurveImages,
    IReadOnlySet<int> CurveEpochs, IReadOnlyList<Arm> Arms, string Data, string? Out, bool Json, bool Quick)
{
    /// <summary>How many seeds each arm and size runs.</summary>
    public int Seeds => SeedList.Count;

    private const string Usage = """
        usage: FashionMnistTransfer [--quick] [--n 100,1000] [--seeds 3 | --seeds 2-3] [--epochs 15] [--lr 3e-4] [--bn frozen|train]
                                    [--warmup 1] [--size 64] [--test-per-class 200] [--arms transferred,stem-reinit,scratch]
                                    [--data DIR] [--out DIR] [--json]
        """;

    /// <summary>Parses the arguments; prints the usage and returns null when they are wrong.</summary>
    public static Options? Parse(string[] args)
    {
        var inv = CultureInfo.InvariantCulture;
        bool quick = args.Contains("--quick");
        // The defaults are the recipe README.md documents; --quick shrinks the budget, not the recipe.
        var values = new Dictionary<string, string>
        {
            ["--n"] = quick ? "100" : "100,1000", ["--seeds"] = quick ? "1" : "3", ["--epochs"] = quick ? "1" : "15",
            ["--lr"] = "3e-4", ["--bn"] = "frozen", ["--warmup"] = quick ? "0" : "1", ["--size"] = quick ? "32" : "64",
            ["--test-per-class"] = quick ? "20" : "200", ["--curve-images"] = "500",
            ["--arms"] = "transferred,stem-reinit,scratch", ["--data"] = FashionMnist.DefaultFolder,
        };
        string? output = null;
        bool json = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a is "--quick")
            {
                continue;
            }
            if (a is "--json")
            {
                json = true;
            }
            else if (a is "--help" or "-h")
            {
                Console.WriteLine(Usage);
                return null;
            }
            else if ((values.ContainsKey(a) || a == "--out") && i + 1 < args.Length)
            {
                if (a == "--out")
                {
                    output = args[++i];
                }
                else
                {
                    values[a] = args[++i];
                }
            }
            else
            {
                Console.Error.WriteLine($"unknown or incomplete option '{a}'");
                Console.Error.WriteLine(Usage);
                return null;
            }
        }
        try
        {
            var sizes = values["--n"].Split(',').Select(s => int.Parse(s, inv)).ToArray();
            if (sizes.Any(n => n < 10 || n % 10 != 0 || n > 60000))
            {
                throw new FormatException("--n takes multiples of 10 (a balanced set: N/10 images of each class) up to 60000");
            }
            var bn = values["--bn"] switch
            {
                "frozen" => BatchNormMode.Frozen,
                "train" => BatchNormMode.Train,
                var other => throw new FormatException($"--bn takes frozen or train, not '{other}'"),
            };
            var arms = values["--arms"].Split(',').Select(s => s switch
            {
                "transferred" => Arm.Transferred,
                "stem-reinit" => Arm.StemReinit,
                "scratch" => Arm.Scratch,
                _ => throw new FormatException($"--arms takes transferred, stem-reinit and scratch, not '{s}'"),
            }).ToArray();
            int epochs = int.Parse(values["--epochs"], inv);
            var recipe = new Recipe(double.Parse(values["--lr"], inv), bn, int.Parse(values["--warmup"], inv), epochs);
            // Learning curves at about six points and the last epoch (each point costs a pass over the curve images).
            int step = Math.Max(1, epochs / 5);
            var curveEpochs = Enumerable.Range(1, epochs).Where(e => e == 1 || e % step == 0 || e == epochs).ToHashSet();
            // "--seeds 3" runs seeds 1–3; "--seeds 2-3" runs seeds 2 and 3 only (to spread one table over processes).
            var range = values["--seeds"].Split('-');
            int first = range.Length == 2 ? int.Parse(range[0], inv) : 1, last = int.Parse(range[^1], inv);
            if (range.Length > 2 || first < 1 || last < first)
            {
                throw new FormatException($"--seeds takes a count (3: seeds 1-3) or a range (2-3), not '{values["--seeds"]}'");
            }
            return new Options(sizes, [.. Enumerable.Range(first, last - first + 1)], recipe, int.Parse(values["--size"], inv),
                int.Parse(values["--test-per-class"], inv), int.Parse(values["--curve-images"], inv), curveEpochs, arms,
                values["--data"], output, json, quick);
        }
        catch (FormatException e)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine(Usage);
            return null;
        }
    }
}
