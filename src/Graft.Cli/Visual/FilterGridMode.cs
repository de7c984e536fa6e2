namespace Graft.Cli.Visual;

/// <summary>How the input channels of a filter are drawn.</summary>
internal enum FilterGridMode
{
    /// <summary>Exactly 3 input channels: one colour tile per filter (input 0 = red, 1 = green, 2 = blue).</summary>
    Rgb,
    /// <summary>One grey tile per filter and input channel: a row per filter, a column per input (1 input: a square grid).</summary>
    PerInput,
    /// <summary>One grey tile per filter showing the mean over its inputs (used when per-input tiles would be too many).</summary>
    MeanOverInputs,
}
