using System.Globalization;
using System.Text;
using System.Text.Json;

/// <summary>Mean ± standard deviation over seeds, as a table and as JSON.</summary>
internal static class Summary
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>Mean and sample standard deviation (0 for one value).</summary>
    public static (double Mean, double Std) MeanStd(IReadOnlyList<double> values)
    {
        double mean = values.Average();
        double std = values.Count < 2 ? 0 : Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
        return (mean, std);
    }

    public static string Table(IReadOnlyList<RunResult> runs, Options options)
    {
        var inv = CultureInfo.InvariantCulture;
        var arms = runs.Select(r => r.Arm).Distinct().ToArray();
        var text = new StringBuilder();
        text.AppendLine(inv, $"test accuracy, mean ± std over {options.Seeds} seed(s), {runs.Count} runs ({options.Recipe})");
        text.Append("| N |");
        foreach (var arm in arms)
        {
            text.Append(inv, $" {arm} |");
        }
        text.AppendLine();
        text.AppendLine("|--:|" + string.Concat(arms.Select(_ => "--:|")));
        foreach (var n in runs.Select(r => r.N).Distinct())
        {
            text.Append(inv, $"| {n:N0} |");
            foreach (var arm in arms)
            {
                var (mean, std) = MeanStd(runs.Where(r => r.N == n && r.Arm == arm).Select(r => r.Accuracy * 100).ToList());
                text.Append(inv, $" {mean:F1} ± {std:F1} % |");
            }
            text.AppendLine();
        }
        return text.ToString().TrimEnd();
    }

    public static string Json(IReadOnlyList<RunResult> runs, Options options) =>
        JsonSerializer.Serialize(new
        {
            recipe = new { options.Recipe.LearningRate, batchNorm = options.Recipe.BatchNorm.ToString().ToLowerInvariant(), options.Recipe.WarmupEpochs, options.Recipe.Epochs, options.Recipe.Batch },
            imageSize = options.Size,
            testImages = options.TestPerClass * 10,
            summary = runs.GroupBy(r => (r.N, r.Arm)).Select(g =>
            {
                var (mean, std) = MeanStd(g.Select(r => r.Accuracy).ToList());
                return new { n = g.Key.N, arm = g.Key.Arm, seeds = g.Count(), mean, std };
            }),
            runs,
        }, JsonOptions);
}
