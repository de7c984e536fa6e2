using System.Diagnostics;
using System.Text.Json.Serialization;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Graft.Numerics;

/// <summary>
/// A small numerical self-check of libtorch's CPU convolutions: a few float32 convolutions, forward and backward, at
/// the process's thread count and at channel counts that take oneDNN's blocked AVX-512 paths (24 and 40 channels are
/// not multiples of 16, which exercises their tails), compared with the same computation in float64, which does not
/// go through oneDNN. On some AMD EPYC hosts with AVX-512, libtorch 2.10's oneDNN kernels return values off by 20–50 %
/// or NaN for exactly such shapes once the batch has two or more images; the check sees that in a few milliseconds.
/// </summary>
/// <remarks>
/// The check uses its own random generator, so it leaves the global seed (and every result that depends on it) as it was,
/// and enables gradients for its own backward passes only.
/// </remarks>
public static class NumericsCheck
{
    /// <summary>The tolerance <see cref="Run"/> applies.</summary>
    public const double DefaultTolerance = 1e-4;

    /// <summary>Runs every case now and returns the errors (no workaround, no exception for a failure).</summary>
    public static NumericsCheckResult Run() => RunWith(injectFault: false);

    internal static NumericsCheckResult RunWith(bool injectFault)
    {
        var clock = Stopwatch.StartNew();
        int threads = get_num_threads();
        // Two or more images per batch: the miscomputing kernels are the batch-parallel ones.
        long batch = Math.Clamp(threads, 2, 8);
        using var scope = NewDisposeScope();
        using var grad = enable_grad();
        using var gen = new Generator(20261130);
        // The float64 reference never takes NNPACK, but libtorch asks for it first and, where NNPACK cannot run, prints
        // a warning each time: switch it off for the check and restore the caller's setting.
        bool? nnpack = LibTorchSwitches.NnpackEnabled;
        LibTorchSwitches.TrySetNnpackEnabled(false);
        try
        {
            var cases = new List<NumericsCase>(3)
            {
                Case("conv2d", $"({batch}, 24, 8, 8) * (24, 24, 3, 3), padding 1", gen, [batch, 24, 8, 8], [24, 24, 3, 3],
                    (x, w) => F.conv2d(x, w, padding: [1, 1]), injectFault),
                // 24 channels per group: a tail on AVX-512 (not a multiple of 16) yet whole blocks of 8 on AVX2. With 20 per
                // group, oneDNN capped at AVX2 (what the guard does on affected hosts) takes a path whose first call costs
                // ~20 ms more, a third of the whole check.
                Case("conv2d-strided-grouped", $"({batch}, 48, 9, 9) * (48, 24, 3, 3), stride 2, padding 1, groups 2", gen, [batch, 48, 9, 9], [48, 24, 3, 3],
                    (x, w) => F.conv2d(x, w, strides: [2, 2], padding: [1, 1], groups: 2), false),
                Case("conv-transpose2d", $"({batch}, 32, 6, 6) * (32, 24, 3, 3), stride 2, padding 1, output padding 1", gen, [batch, 32, 6, 6], [32, 24, 3, 3],
                    (x, w) => F.conv_transpose2d(x, w, strides: [2, 2], padding: [1, 1], output_padding: [1, 1]), false),
            };
            return new NumericsCheckResult(cases, DefaultTolerance, threads, LibTorchSwitches.MkldnnEnabled, clock.Elapsed.TotalMilliseconds, injectFault);
        }
        finally
        {
            if (nnpack is true)
            {
                LibTorchSwitches.TrySetNnpackEnabled(true);
            }
        }
    }

    private static NumericsCase Case(string name, string description, Generator gen, long[] xShape, long[] wShape, Func<Tensor, Tensor, Tensor> op, bool injectFault)
    {
        // float32 whatever the process's default dtype: the kernels under test are the float32 ones.
        var x = randn(xShape, dtype: ScalarType.Float32, generator: gen);
        var w = randn(wShape, dtype: ScalarType.Float32, generator: gen) * 0.2;
        var (y, gx, gw) = Evaluate(x, w, op, seed: null);
        var (yr, gxr, gwr) = Evaluate(x.to(ScalarType.Float64), w.to(ScalarType.Float64), op, seed: y);
        if (injectFault)
        {
            // What a broken kernel does at worst: one NaN in the output. A check that missed it would be worthless.
            y.view(-1)[0] = float.NaN;
        }
        return new NumericsCase(name, description, RelativeError(y, yr), RelativeError(gx, gxr), RelativeError(gw, gwr));
    }

    /// <summary>Output and gradients for an output gradient of ones scaled by the output's position (not all equal, so every tap counts).</summary>
    private static (Tensor Y, Tensor Gx, Tensor Gw) Evaluate(Tensor x, Tensor w, Func<Tensor, Tensor, Tensor> op, Tensor? seed)
    {
        var xv = x.detach().requires_grad_(true);
        var wv = w.detach().requires_grad_(true);
        var y = op(xv, wv);
        var g = (seed ?? y).detach().sin().to(y.dtype);
        var grads = TorchSharp.torch.autograd.grad([y], [xv, wv], [g]);
        return (y.detach(), grads[0], grads[1]);
    }

    /// <summary>
    /// max |a − ref| / max |ref|, in float64; NaN when <paramref name="actual"/> holds NaN or infinity. Computed on the
    /// tensors' bytes rather than with libtorch ops: a dozen small float64 kernels run for the first time here cost more
    /// than the comparison (the check runs before anything is warm).
    /// </summary>
    private static double RelativeError(Tensor actual, Tensor reference)
    {
        if (actual.dtype != ScalarType.Float32 || reference.dtype != ScalarType.Float64 || actual.numel() != reference.numel())
        {
            throw new InvalidOperationException($"The numerics check compares float32 with float64 results of one size; got {actual.dtype} and {reference.dtype}.");
        }
        using var a = actual.contiguous();
        using var r = reference.contiguous();
        var av = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(a.bytes);
        var rv = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(r.bytes);
        double diff = 0, scale = 0;
        for (int i = 0; i < av.Length; i++)
        {
            if (!float.IsFinite(av[i]) || double.IsNaN(rv[i]))
            {
                return double.NaN;
            }
            diff = Math.Max(diff, Math.Abs(av[i] - rv[i]));
            scale = Math.Max(scale, Math.Abs(rv[i]));
        }
        return scale > 0 ? diff / scale : diff;
    }

    internal static string Format(double v) => double.IsNaN(v) ? "NaN" : v.ToString("0.##e+0", System.Globalization.CultureInfo.InvariantCulture);
}
