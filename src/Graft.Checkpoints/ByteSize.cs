namespace Graft.Checkpoints;

/// <summary>
/// Byte sizes as the commands read and print them: options take a number with an optional unit (KB, MB, GB decimal;
/// KiB, MiB, GiB binary); output prints binary units.
/// </summary>
internal static class ByteSize
{
    /// <summary>A size for a person: <c>512 B</c>, <c>1.5 KiB</c>, <c>20.0 MiB</c>, <c>1.25 GiB</c>.</summary>
    public static string Format(long n) => n switch
    {
        < 1024 => $"{n} B",
        < 1024 * 1024 => $"{n / 1024.0:0.0} KiB",
        < 1024L * 1024 * 1024 => $"{n / (1024.0 * 1024):0.0} MiB",
        _ => $"{n / (1024.0 * 1024 * 1024):0.00} GiB",
    };

    /// <summary>Reads an option's size; <paramref name="option"/> names it in the error.</summary>
    /// <exception cref="InvalidInputException">Not a positive size.</exception>
    public static long Parse(string text, string option)
    {
        var t = text.Trim();
        int split = 0;
        while (split < t.Length && (char.IsAsciiDigit(t[split]) || t[split] == '.'))
        {
            split++;
        }
        long unit = t[split..].Trim().ToUpperInvariant() switch
        {
            "" or "B" => 1,
            "KB" => 1000,
            "MB" => 1000_000,
            "GB" => 1000_000_000,
            "KIB" => 1L << 10,
            "MIB" => 1L << 20,
            "GIB" => 1L << 30,
            _ => 0,
        };
        if (unit == 0 || !double.TryParse(t[..split], System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var n)
            || n <= 0 || n * unit >= long.MaxValue || n * unit < 1)
        {
            throw new InvalidInputException($"{option}: '{text}' is not a positive size (for example 500MB, 2GiB or 1048576).");
        }
        return (long)(n * unit);
    }
}
