using Graft.Checkpoints;
using Graft.Cli.Visual;
using SkiaSharp;

namespace Graft.Cli;

/// <summary>
/// PNG output for the commands: panels of rasters with titles, and atomic writes. Text uses a system TrueType font when
/// one is found (the NoDependencies Skia build has no font lookup); without one, images are still written, untitled.
/// </summary>
internal static class Png
{
    private static readonly Lazy<SKTypeface> Face = new(FindTypeface);

    public static SKTypeface Typeface => Face.Value;

    public static SKBitmap ToBitmap(Raster raster)
    {
        var bmp = new SKBitmap(raster.Width, raster.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var px = new SKColor[raster.Width * raster.Height];
        for (int i = 0; i < px.Length; i++)
        {
            px[i] = new SKColor(raster.Rgb[i * 3], raster.Rgb[(i * 3) + 1], raster.Rgb[(i * 3) + 2]);
        }
        bmp.Pixels = px;
        return bmp;
    }

    /// <summary>Rasters side by side, each with a title above and a caption below, on white.</summary>
    public static SKBitmap Panels(IReadOnlyList<(Raster Image, string Title, string Caption)> panels)
    {
        const int pad = 16, titleH = 22, captionH = 20;
        using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true, Typeface = Typeface, TextSize = 14 };
        int width = pad, height = 0;
        foreach (var p in panels)
        {
            int textW = (int)Math.Ceiling(Math.Max(paint.MeasureText(p.Title), paint.MeasureText(p.Caption)));
            width += Math.Max(p.Image.Width, textW) + pad;
            height = Math.Max(height, p.Image.Height);
        }
        height += pad + titleH + captionH + pad;
        var bmp = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var canvas = new SKCanvas(bmp);
        canvas.Clear(SKColors.White);
        int x = pad;
        foreach (var p in panels)
        {
            canvas.DrawText(p.Title, x, pad + 14, paint);
            using (var img = ToBitmap(p.Image))
            {
                canvas.DrawBitmap(img, x, pad + titleH);
            }
            canvas.DrawText(p.Caption, x, pad + titleH + p.Image.Height + 16, paint);
            int textW = (int)Math.Ceiling(Math.Max(paint.MeasureText(p.Title), paint.MeasureText(p.Caption)));
            x += Math.Max(p.Image.Width, textW) + pad;
        }
        canvas.Flush();
        return bmp;
    }

    /// <summary>Encodes and writes atomically: readers see the old file or the complete new one.</summary>
    public static void Write(string path, SKBitmap bitmap)
    {
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new IOException($"{path}: could not encode the image as PNG.");
        AtomicFile.Write(path, s => data.SaveTo(s));
    }

    private static SKTypeface FindTypeface()
    {
        string[] candidates =
        [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
            @"C:\Windows\Fonts\arial.ttf",
        ];
        foreach (var c in candidates.Where(File.Exists))
        {
            var face = SKTypeface.FromFile(c);
            if (face is not null)
            {
                return face;
            }
        }
        foreach (var dir in new[] { "/usr/share/fonts", "/usr/local/share/fonts" }.Where(Directory.Exists))
        {
            foreach (var f in Directory.EnumerateFiles(dir, "*.ttf", SearchOption.AllDirectories))
            {
                var face = SKTypeface.FromFile(f);
                if (face is not null)
                {
                    return face;
                }
            }
        }
        return SKTypeface.Default;
    }
}
