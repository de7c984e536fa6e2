using SkiaSharp;

/// <summary>Learning curves: mean test accuracy (curve subset) against epochs, one panel per N, one line per arm.</summary>
internal static class Chart
{
    private static readonly Dictionary<string, SKColor> Colours = new()
    {
        ["transferred"] = new SKColor(0x1f, 0x77, 0xb4), ["stem-reinit"] = new SKColor(0xff, 0x7f, 0x0e), ["scratch"] = new SKColor(0x7f, 0x7f, 0x7f),
    };

    public static void LearningCurves(IReadOnlyList<RunResult> runs, string path)
    {
        var sizes = runs.Select(r => r.N).Distinct().ToArray();
        const int panelW = 420, panelH = 300, left = 50, right = 12, top = 30, bottom = 40;
        using var bitmap = new SKBitmap(panelW * sizes.Length, panelH);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var font = new SKFont(SKTypeface.Default, 12);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var grid = new SKPaint { Color = new SKColor(0xdd, 0xdd, 0xdd), StrokeWidth = 1 };
        for (int p = 0; p < sizes.Length; p++)
        {
            float x0 = p * panelW + left, x1 = (p + 1) * panelW - right, y0 = top, y1 = panelH - bottom;
            var ofN = runs.Where(r => r.N == sizes[p]).ToArray();
            int maxEpoch = Math.Max(1, ofN.SelectMany(r => r.Curve).Max(c => c.Epoch));
            float X(double epoch) => (float)(x0 + (x1 - x0) * epoch / maxEpoch);
            float Y(double accuracy) => (float)(y1 - (y1 - y0) * accuracy);
            for (int k = 0; k <= 10; k += 2)
            {
                canvas.DrawLine(x0, Y(k / 10.0), x1, Y(k / 10.0), grid);
                canvas.DrawText($"{k * 10}%", x0 - 36, Y(k / 10.0) + 4, font, ink);
            }
            canvas.DrawText($"N = {sizes[p]:N0}: test accuracy by epoch", x0, top - 10, font, ink);
            foreach (int epoch in ofN.SelectMany(r => r.Curve).Select(c => c.Epoch).Distinct())
            {
                canvas.DrawText(epoch.ToString(System.Globalization.CultureInfo.InvariantCulture), X(epoch) - 4, y1 + 14, font, ink);
            }
            canvas.DrawText("epoch", (x0 + x1) / 2 - 15, panelH - 8, font, ink);
            int legend = 0;
            foreach (var arm in ofN.Select(r => r.Arm).Distinct())
            {
                var points = ofN.Where(r => r.Arm == arm).SelectMany(r => r.Curve).GroupBy(c => c.Epoch)
                    .OrderBy(g => g.Key).Select(g => (Epoch: g.Key, Mean: g.Average(c => c.Accuracy))).ToArray();
                using var line = new SKPaint { Color = Colours.GetValueOrDefault(arm, SKColors.Black), StrokeWidth = 2, IsAntialias = true, Style = SKPaintStyle.Stroke };
                for (int i = 1; i < points.Length; i++)
                {
                    canvas.DrawLine(X(points[i - 1].Epoch), Y(points[i - 1].Mean), X(points[i].Epoch), Y(points[i].Mean), line);
                }
                using var label = new SKPaint { Color = line.Color, IsAntialias = true };
                canvas.DrawText(arm, x1 - 90, y1 - 12 - 16 * legend++, font, label);
            }
        }
        using var image = SKImage.FromBitmap(bitmap);
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        png.SaveTo(file);
    }
}
