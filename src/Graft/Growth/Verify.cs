using static TorchSharp.torch;

namespace Graft.Growth;

/// <summary>How far a grown network's outputs are from the source network's.</summary>
/// <param name="MaxAbsolute">Largest |target − source| over every output element of every input.</param>
/// <param name="MaxRelative">
/// Largest, over inputs, of max |target − source| divided by max |source| for that input: relative to the output's
/// scale, so near-zero elements do not inflate it.
/// </param>
/// <param name="Inputs">Number of inputs compared.</param>
public readonly record struct OutputDifference(double MaxAbsolute, double MaxRelative, int Inputs)
{
    /// <summary>True when <see cref="MaxRelative"/> is at most <paramref name="tolerance"/>.</summary>
    public bool Within(double tolerance) => MaxRelative <= tolerance;
}

/// <summary>
/// Checks a growth claim numerically: run both networks on the same inputs and measure the output difference. Used by the
/// tests and the demo; worth running on real data after any growth, since a wrong width group shows up here at once.
/// </summary>
public static class Verify
{
    /// <summary>
    /// Compares <paramref name="source"/> and <paramref name="target"/> on <paramref name="count"/> inputs from
    /// <paramref name="input"/> (called with 0, 1, …), in eval mode and without gradients. Each module's training flags
    /// are restored afterwards. Each input is moved to each module's device and (when floating) its dtype, so float32
    /// CPU inputs check a float64, half-precision or CUDA model; the outputs are compared in float64.
    /// </summary>
    public static OutputDifference Compare(nn.Module<Tensor, Tensor> source, nn.Module<Tensor, Tensor> target, Func<int, Tensor> input, int count)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Compare(source, target, i =>
        {
            var x = input(i);
            return (x, x);
        }, count);
    }

    /// <summary>
    /// Like <see cref="Compare(nn.Module{Tensor, Tensor}, nn.Module{Tensor, Tensor}, Func{int, Tensor}, int)"/> with a
    /// separate input for each network, for growths that change the input's form (a 2-D network against its inflated
    /// 3-D version on clips of identical frames, a patch embedding on resized images).
    /// </summary>
    public static OutputDifference Compare(nn.Module<Tensor, Tensor> source, nn.Module<Tensor, Tensor> target, Func<int, (Tensor Source, Tensor Target)> inputs, int count)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        // A verification is only as good as the kernels it runs on.
        Numerics.NumericsGuard.Ensure();
        var modes = Modes(source).Concat(Modes(target)).ToList();
        source.eval();
        target.eval();
        try
        {
            double maxAbs = 0, maxRel = 0;
            using var noGrad = no_grad();
            for (int i = 0; i < count; i++)
            {
                using var scope = NewDisposeScope();
                var (xs, xt) = inputs(i);
                var ys = source.forward(OnModule(xs, source)).to(ScalarType.Float64);
                var yt = target.forward(OnModule(xt, target)).to(ScalarType.Float64).to(ys.device);
                if (!ys.shape.SequenceEqual(yt.shape))
                {
                    throw new ArgumentException($"Input {i}: the source gives shape ({string.Join(", ", ys.shape)}), the target ({string.Join(", ", yt.shape)}).");
                }
                double diff = (ys - yt).abs().max().item<double>();
                double scale = ys.abs().max().item<double>();
                maxAbs = Math.Max(maxAbs, diff);
                maxRel = Math.Max(maxRel, scale > 0 ? diff / scale : diff == 0 ? 0 : double.PositiveInfinity);
            }
            return new OutputDifference(maxAbs, maxRel, count);
        }
        finally
        {
            // Ancestors come before descendants, and train() recurses, so restoring in order leaves each flag as it was.
            foreach (var (module, training) in modes)
            {
                module.train(training);
            }
        }
    }

    /// <summary>
    /// The input on the module's device, and in its floating dtype when the input is floating (integer inputs such as
    /// token ids keep theirs), so one input function serves a float64, float16, bfloat16 or CUDA model alike. A
    /// tensor already there is returned as is: no copy.
    /// </summary>
    private static Tensor OnModule(Tensor x, nn.Module module)
    {
        var like = module.parameters().Concat(module.buffers()).FirstOrDefault(t => t.is_floating_point());
        if (like is null)
        {
            return x;
        }
        if (x.is_floating_point() && x.dtype != like.dtype)
        {
            x = x.to(like.dtype);
        }
        return x.device.type == like.device.type && x.device.index == like.device.index ? x : x.to(like.device);
    }

    private static List<(nn.Module Module, bool Training)> Modes(nn.Module root) =>
        [(root, root.training), .. root.modules().Select(m => (m, m.training))];
}
