using SkiaSharp;

namespace Graft.Cli;

/// <summary>A small line chart drawn with SkiaSharp: axes, ticks, one line per series, a legend.</summary>
internal static class Plot
{
    public sealed record Series(string Name, SKColor Colour, IReadOnlyList<double> Values);

    /// <summary>
    /// Draws the series against 0…n−1 on the x axis, into a <paramref name="width"/>×<paramref name="height"/> chart.
    /// Points that are NaN or infinite (a training that diverged) are left out, the line broken there, and the legend
    /// says how many.
    /// </summary>
    public static SKBitmap Lines(string title, string xLabel, IReadOnlyList<Series> series, double? yMin = null, double? yMax = null, int width = 520, int height = 360)
    {
        const int left = 58, right = 16, top = 36, bottom = 48;
        var all = series.SelectMany(s => s.Values).Where(double.IsFinite).DefaultIfEmpty(0).ToList();
        double lo = yMin ?? all.Min(), hi = yMax ?? all.Max();
        if (hi - lo < 1e-9)
        {
            hi = lo + 1;
        }
        if (yMin is null)
        {
            lo = Math.Max(0, lo - (0.05 * (hi - lo)));
        }
        int n = series.Max(s => s.Values.Count);
        double xMax = Math.Max(1, n - 1);
        var bmp = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var canvas = new SKCanvas(bmp);
        canvas.Clear(SKColors.White);
        using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true, Typeface = Png.Typeface, TextSize = 13 };
        using var titlePaint = new SKPaint { Color = SKColors.Black, IsAntialias = true, Typeface = Png.Typeface, TextSize = 15 };
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true };
        using var grid = new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1 };
        float pw = width - left - right, ph = height - top - bottom;
        float X(double v) => left + (float)(v / xMax * pw);
        float Y(double v) => top + ph - (float)((v - lo) / (hi - lo) * ph);

        canvas.DrawText(title, left, 22, titlePaint);
        foreach (var t in Ticks(lo, hi))
        {
            canvas.DrawLine(left, Y(t), left + pw, Y(t), grid);
            var label = t.ToString(hi - lo < 0.5 ? "0.00" : hi - lo < 5 ? "0.0" : "0", System.Globalization.CultureInfo.InvariantCulture);
            canvas.DrawText(label, left - 6 - text.MeasureText(label), Y(t) + 4, text);
        }
        int step = Math.Max(1, (int)Math.Ceiling(xMax / 10));
        for (int i = 0; i <= xMax; i += step)
        {
            canvas.DrawLine(X(i), top + ph, X(i), top + ph + 4, axis);
            var label = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            canvas.DrawText(label, X(i) - (text.MeasureText(label) / 2), top + ph + 18, text);
        }
        canvas.DrawLine(left, top, left, top + ph, axis);
        canvas.DrawLine(left, top + ph, left + pw, top + ph, axis);
        canvas.DrawText(xLabel, left + (pw / 2) - (text.MeasureText(xLabel) / 2), height - 10, text);

        foreach (var s in series)
        {
            using var line = new SKPaint { Color = s.Colour, StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
            using var dot = new SKPaint { Color = s.Colour, IsAntialias = true };
            using var path = new SKPath();
            bool pen = false;
            for (int i = 0; i < s.Values.Count; i++)
            {
                if (!double.IsFinite(s.Values[i]))
                {
                    pen = false;
                    continue;
                }
                var p = new SKPoint(X(i), Y(s.Values[i]));
                if (pen)
                {
                    path.LineTo(p);
                }
                else
                {
                    path.MoveTo(p);
                }
                pen = true;
                canvas.DrawCircle(p, 3, dot);
            }
            canvas.DrawPath(path, line);
        }

        // The legend last, on a white box, in the right-hand corner the curves leave free there (top when the late
        // values are low, as a falling loss; bottom when they are high, as a rising accuracy).
        double lateMax = series.SelectMany(s => s.Values.Skip((int)(s.Values.Count * 0.6))).Where(double.IsFinite).DefaultIfEmpty(lo).Max();
        var names = series.Select(LegendName).ToList();
        float legendWidth = Math.Max(180, names.Max(n => text.MeasureText(n)) + 36);
        bool atBottom = (lateMax - lo) / (hi - lo) > 0.5;
        float boxTop = atBottom ? top + ph - 8 - (series.Count * 18) - 6 : top + 2;
        float legendY = boxTop + 12, lx = left + pw - legendWidth - 10;
        using (var box = new SKPaint { Color = new SKColor(255, 255, 255, 235) })
        using (var frame = new SKPaint { Color = new SKColor(200, 200, 200), Style = SKPaintStyle.Stroke, StrokeWidth = 1 })
        {
            var rect = new SKRect(lx - 6, boxTop, lx + legendWidth, boxTop + 6 + (series.Count * 18));
            canvas.DrawRect(rect, box);
            canvas.DrawRect(rect, frame);
        }
        foreach (var (s, name) in series.Zip(names))
        {
            using var line = new SKPaint { Color = s.Colour, StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
            canvas.DrawLine(lx, legendY - 4, lx + 24, legendY - 4, line);
            canvas.DrawText(name, lx + 30, legendY, text);
            legendY += 18;
        }
        canvas.Flush();
        return bmp;
    }

    /// <summary>A series' legend entry: its name, and how many of its points were left out for not being finite.</summary>
    internal static string LegendName(Series s)
    {
        int bad = s.Values.Count(v => !double.IsFinite(v));
        return bad > 0 ? $"{s.Name} ({bad} not finite, left out)" : s.Name;
    }

    /// <summary>Charts side by side on one white image.</summary>
    public static SKBitmap Beside(params SKBitmap[] charts)
    {
        var bmp = new SKBitmap(charts.Sum(c => c.Width), charts.Max(c => c.Height), SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var canvas = new SKCanvas(bmp);
        canvas.Clear(SKColors.White);
        int x = 0;
        foreach (var c in charts)
        {
            canvas.DrawBitmap(c, x, 0);
            x += c.Width;
        }
        canvas.Flush();
        return bmp;
    }

    private static IEnumerable<double> Ticks(double lo, double hi)
    {
        double raw = (hi - lo) / 5, mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1, 2, 2.5, 5, 10 }.Select(m => m * mag).First(s => s >= raw);
        for (double t = Math.Ceiling(lo / step) * step; t <= hi + (step * 1e-6); t += step)
        {
            yield return t;
        }
    }
}
