namespace Graft.Cli.Visual;

/// <summary>An RGB image in memory: 3 bytes per pixel, rows top to bottom. Encoding it (PNG …) is the caller's business.</summary>
internal sealed class Raster
{
    /// <summary>Makes a raster filled with one colour.</summary>
    public Raster(int width, int height, (byte R, byte G, byte B) fill)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        Width = width;
        Height = height;
        Rgb = new byte[checked(width * height * 3)];
        for (int i = 0; i < Rgb.Length; i += 3)
        {
            (Rgb[i], Rgb[i + 1], Rgb[i + 2]) = fill;
        }
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The pixels: R, G, B bytes, row-major.</summary>
    public byte[] Rgb { get; }

    /// <summary>Sets one pixel.</summary>
    public void Set(int x, int y, byte r, byte g, byte b)
    {
        int i = ((y * Width) + x) * 3;
        Rgb[i] = r;
        Rgb[i + 1] = g;
        Rgb[i + 2] = b;
    }
}
