using Graft.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Transforms;

/// <summary>How a kernel is resampled to another size.</summary>
public enum KernelResize
{
    /// <summary>Linear in each kernel axis (linear, bilinear, trilinear), corners not aligned.</summary>
    Bilinear,
    /// <summary>Bicubic (2-D kernels only), corners not aligned.</summary>
    Bicubic,
}

/// <summary>How a kernel gains a new leading (time) axis when a 2-D network becomes a 3-D one.</summary>
public enum InflateMode
{
    /// <summary>
    /// I3D: repeat the kernel over the new axis and divide by its length; on a clip of identical frames each output
    /// frame equals the 2-D response (away from zero-padded time borders).
    /// </summary>
    Repeat,
    /// <summary>
    /// The kernel in the centre slice, zeros elsewhere: every output frame is the 2-D response to its own input frame,
    /// for any clip (with time padding ⌊t/2⌋).
    /// </summary>
    CenterSlice,
}

/// <summary>Kernel (spatial) adaptations of a Conv/ConvTranspose weight.</summary>
public static class Kernel
{
    /// <summary>
    /// Centred zero padding and/or centred cropping to <paramref name="targetSize"/>. When an axis grows by d,
    /// ⌊d/2⌋ zeros go before and the rest after; cropping removes the same amounts, so pad then crop is the
    /// identity. A convolution with a kernel padded by p each side and its padding increased by p computes the
    /// same output (tested).
    /// </summary>
    public static WeightTransform CenterFit(Layout layout, IReadOnlyList<long> targetSize) => new Fit(KernelAxes(layout), targetSize.ToArray());

    /// <summary>Resamples the kernel to <paramref name="targetSize"/> with interpolation (the kernel's response changes).</summary>
    public static WeightTransform Resize(Layout layout, IReadOnlyList<long> targetSize, KernelResize mode = KernelResize.Bilinear) =>
        new Resample(KernelAxes(layout), targetSize.ToArray(), mode, pseudoInverse: false);

    /// <summary>
    /// FlexiViT's pseudo-inverse resize: the new kernel w' minimises ‖Bᵀw' − w‖ where B resizes old-size inputs to the
    /// new size, so ⟨resize(x), w'⟩ = ⟨x, w⟩ for every x when growing (exact), least squares when shrinking.
    /// </summary>
    public static WeightTransform PIResize(Layout layout, IReadOnlyList<long> targetSize, KernelResize mode = KernelResize.Bilinear) =>
        new Resample(KernelAxes(layout), targetSize.ToArray(), mode, pseudoInverse: true);

    /// <summary>
    /// Inflates an N-d kernel into an (N+1)-d one with a new first kernel axis of length <paramref name="time"/>
    /// (Conv2d k×k → Conv3d t×k×k), so a pretrained image network starts a video network with the image network's
    /// response (see <see cref="InflateMode"/> for the exact promise of each mode).
    /// </summary>
    public static WeightTransform Inflate(Layout layout, long time, InflateMode mode = InflateMode.Repeat)
    {
        var axes = KernelAxes(layout);
        if (axes.Length >= 3)
        {
            throw new ArgumentException($"A {layout} kernel already has 3 spatial axes; there is no 4-D convolution to inflate into.", nameof(layout));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(time, 1);
        return new InflateTransform(axes[0], layout.Rank, time, mode);
    }

    private static int[] KernelAxes(Layout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (layout.KernelAxes.Count == 0)
        {
            throw new ArgumentException($"A {layout} tensor has no kernel axes.", nameof(layout));
        }
        return layout.KernelAxes.ToArray();
    }

    private static Shape CheckKernel(string op, Shape input, int[] axes, long[] target)
    {
        if (target.Length != axes.Length)
        {
            throw new ArgumentException($"{op}: target kernel has {target.Length} dimensions, the layout has {axes.Length}.");
        }
        if (input.Rank != axes[^1] + 1)
        {
            throw new ArgumentException($"{op}: input shape {input} does not have kernel axes {string.Join(",", axes)}.");
        }
        if (target.Any(t => t < 1))
        {
            throw new ArgumentException($"{op}: target kernel sizes must be positive; got ({string.Join(", ", target)}).");
        }
        var d = input.ToArray();
        for (int i = 0; i < axes.Length; i++)
        {
            d[axes[i]] = target[i];
        }
        return new Shape(d);
    }

    private static string Sizes(long[] s) => string.Join("×", s);

    private sealed class Fit(int[] axes, long[] target) : WeightTransform
    {

        public override string Op => "kernel.fit";

        public override Introduced Introduces => Introduced.Zeros;

        public override string Describe() => $"centre the kernel in {Sizes(target)} (zero-pad larger axes, crop smaller ones)";

        public override Shape OutputShape(Shape input) => CheckKernel(Op, input, axes, target);

        protected override Tensor ApplyCore(Tensor input)
        {
            var t = input;
            for (int i = 0; i < axes.Length; i++)
            {
                long k = t.shape[axes[i]], n = target[i];
                if (n < k)
                {
                    t = t.narrow(axes[i], (k - n) / 2, n);
                }
                else if (n > k)
                {
                    long before = (n - k) / 2, after = n - k - before;
                    // pad lists (before, after) pairs from the last axis backwards.
                    var pad = new long[2 * (t.dim() - axes[i])];
                    pad[^2] = before;
                    pad[^1] = after;
                    t = nn.functional.pad(t, pad);
                }
            }
            return t;
        }

        public override bool HasTwin => true;

        protected override T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape)
        {
            // Crop and pad as one box copy into zeros: per kernel axis the crop offset ⌊(k−n)/2⌋ or the pad offset ⌊(n−k)/2⌋.
            var dims = shape.ToArray();
            var outDims = OutputShape(shape).ToArray();
            var from = new long[dims.Length];
            var to = new long[dims.Length];
            var count = (long[])dims.Clone();
            for (int i = 0; i < axes.Length; i++)
            {
                long k = dims[axes[i]], n = target[i];
                count[axes[i]] = Math.Min(k, n);
                from[axes[i]] = k > n ? (k - n) / 2 : 0;
                to[axes[i]] = n > k ? (n - k) / 2 : 0;
            }
            var output = new T[Twins.Length(outDims)];
            Twins.CopyBox(input, dims, output, outDims, from, to, count);
            return output;
        }
    }

    private sealed class Resample : WeightTransform
    {
        private readonly int[] _axes;
        private readonly long[] _target;
        private readonly KernelResize _mode;
        private readonly bool _pi;

        public Resample(int[] axes, long[] target, KernelResize mode, bool pseudoInverse)
        {
            if (mode == KernelResize.Bicubic && axes.Length != 2)
            {
                throw new ArgumentException("Bicubic kernel resizing is for 2-D kernels.");
            }
            (_axes, _target, _mode, _pi) = (axes, target, mode, pseudoInverse);
        }

        public override string Op => _pi ? "kernel.pi-resize" : _mode == KernelResize.Bicubic ? "kernel.resize-bicubic" : "kernel.resize-bilinear";

        public override string Describe() => _pi
            ? $"pseudo-inverse resize of the kernel to {Sizes(_target)} (FlexiViT, {_mode.ToString().ToLowerInvariant()} basis)"
            : $"{_mode.ToString().ToLowerInvariant()} resize of the kernel to {Sizes(_target)}";

        public override Shape OutputShape(Shape input) => CheckKernel(Op, input, _axes, _target);

        protected override Tensor ApplyCore(Tensor input)
        {
            var shape = input.shape;
            var old = _axes.Select(a => shape[a]).ToArray();
            if (old.SequenceEqual(_target))
            {
                return input.alias();
            }
            long lead = shape.Take(_axes[0]).Aggregate(1L, (a, b) => a * b);
            long oldN = old.Aggregate(1L, (a, b) => a * b), newN = _target.Aggregate(1L, (a, b) => a * b);
            var outShape = shape.Take(_axes[0]).Concat(_target).ToArray();
            if (!_pi)
            {
                var batch = input.reshape([lead, 1, .. old]);
                return Interpolate(batch).reshape(outShape);
            }
            using var basis = eye(oldN, dtype: ScalarType.Float64, device: input.device).reshape([oldN, 1, .. old]);
            using var bt = Interpolate(basis).reshape(oldN, newN);     // row i = resize(e_i)
            using var p = linalg.pinv(bt);                              // (newN, oldN): w' = P w
            using var pt = p.t().to(input.dtype);
            return input.reshape(lead, oldN).matmul(pt).reshape(outShape);
        }

        private Tensor Interpolate(Tensor batch)
        {
            var mode = _mode == KernelResize.Bicubic ? InterpolationMode.Bicubic : _axes.Length switch
            {
                1 => InterpolationMode.Linear,
                2 => InterpolationMode.Bilinear,
                _ => InterpolationMode.Trilinear,
            };
            return nn.functional.interpolate(batch, size: _target, mode: mode, align_corners: false);
        }
    }
}

internal sealed class InflateTransform(int axis, int rank, long time, InflateMode mode) : WeightTransform
{
    public override string Op => mode == InflateMode.Repeat ? "kernel.inflate-repeat" : "kernel.inflate-centre";

    public override Introduced Introduces => mode == InflateMode.CenterSlice && time > 1 ? Introduced.Zeros : Introduced.Nothing;

    public override string Describe() => mode == InflateMode.Repeat
        ? $"inflate the kernel over a new axis of {time}: repeat and divide by {time} (I3D)"
        : $"inflate the kernel over a new axis of {time}: the kernel in the centre slice, zeros elsewhere";

    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank != rank)
        {
            throw new ArgumentException($"{Op}: input shape {input} has rank {input.Rank}; expected a weight of rank {rank}.");
        }
        var d = input.ToList();
        d.Insert(axis, time);
        return new Shape(d.ToArray());
    }

    protected override Tensor ApplyCore(Tensor input)
    {
        var one = input.unsqueeze(axis);
        if (mode == InflateMode.Repeat)
        {
            var reps = Enumerable.Repeat(1L, rank + 1).ToArray();
            reps[axis] = time;
            return one.repeat(reps) / time;
        }
        long before = (time - 1) / 2, after = time - 1 - before;
        // pad lists (before, after) pairs from the last axis backwards.
        var pad = new long[2 * (rank + 1 - axis)];
        pad[^2] = before;
        pad[^1] = after;
        return nn.functional.pad(one, pad);
    }
}
