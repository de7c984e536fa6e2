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

/// <summary>Transforms that start a tensor afresh instead of deriving it from the source.</summary>
public static class Reinit
{
    /// <summary>
    /// Kaiming-normal (fan_out, ReLU) of the given target shape, the seed text's "reinitialise" option. Deterministic
    /// for a seed; the output does not depend on the input (and carries no gradient to it).
    /// </summary>
    public static WeightTransform KaimingNormal(Shape targetShape, long seed) => new Kaiming(targetShape, seed);

    /// <summary>
    /// PyTorch's (and TorchSharp's) default init of a Linear weight: kaiming_uniform with a = √5, that is
    /// U(−1/√fan_in, 1/√fan_in) with fan_in the product of every axis but the first. What a freshly built classifier
    /// head holds; Kaiming fan-out on a 1000×512 head would draw values 18 times larger. Deterministic for a seed.
    /// </summary>
    public static WeightTransform LinearDefault(Shape targetShape, long seed) => new LinearUniform(targetShape, seed);

    /// <summary>
    /// The identity weight of <paramref name="targetShape"/> for a layer of <paramref name="layout"/>: channel c maps to
    /// channel c with 1 at the kernel centre (odd kernels). Net2DeeperNet's new layer, which computes what was there
    /// before it when it follows a ReLU. Ignores its input (there is no source layer).
    /// </summary>
    public static WeightTransform Identity(Layout layout, Shape targetShape)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(targetShape);
        layout.Check(targetShape, "identity weight");
        if (layout.Kind is not (LayerKind.Conv or LayerKind.Linear))
        {
            throw new ArgumentException($"An identity weight is defined for Conv and Linear layers, not {layout}.", nameof(layout));
        }
        long outs = targetShape[0], ins = targetShape[1];
        bool depthwise = layout.Groups > 1 && ins == 1 && outs == layout.Groups;
        if (layout.Groups > 1 && !depthwise)
        {
            throw new NotSupportedException($"An identity weight for {layout} is only defined for depthwise convolutions.");
        }
        if (!depthwise && outs != ins)
        {
            throw new ArgumentException($"An identity weight needs as many outputs as inputs; got {targetShape}.", nameof(targetShape));
        }
        foreach (var a in layout.KernelAxes)
        {
            if (targetShape[a] % 2 == 0)
            {
                throw new ArgumentException($"An identity kernel needs odd sizes to have a centre; got {targetShape}.", nameof(targetShape));
            }
        }
        return new IdentityWeight(layout, targetShape, depthwise);
    }

    /// <summary>A constant tensor of <paramref name="targetShape"/> (identity BatchNorm statistics, zero biases). Ignores its input.</summary>
    public static WeightTransform Constant(Shape targetShape, double value)
    {
        ArgumentNullException.ThrowIfNull(targetShape);
        return new ConstantWeight(targetShape, value);
    }

    private sealed class IdentityWeight(Layout layout, Shape target, bool depthwise) : WeightTransform
    {
        public override string Op => "reinit.identity";

        public override Introduced Introduces => Introduced.Constants;

        public override string Describe() => $"identity {layout} weight {target}: 1 at the kernel centre from channel c to channel c";

        public override Shape OutputShape(Shape input) => target;

        protected override Tensor ApplyCore(Tensor input)
        {
            // Row-major flat position of (c, c or 0, centre…) for every channel c.
            var dims = target.ToArray();
            var values = new double[target.ElementCount];
            for (long c = 0; c < dims[0]; c++)
            {
                long[] at = [c, depthwise ? 0 : c, .. layout.KernelAxes.Select(a => dims[a] / 2)];
                long flat = 0;
                for (int i = 0; i < dims.Length; i++)
                {
                    flat = flat * dims[i] + at[i];
                }
                values[flat] = 1;
            }
            return tensor(values, dims, dtype: ScalarType.Float64).to(input.dtype, input.device);
        }
    }

    private sealed class ConstantWeight(Shape target, double value) : WeightTransform
    {
        public override string Op => "reinit.constant";

        public override Introduced Introduces => value == 0 ? Introduced.Zeros : Introduced.Constants;

        public override string Describe() => FormattableString.Invariant($"constant {value} of shape {target}");

        public override Shape OutputShape(Shape input) => target;

        protected override Tensor ApplyCore(Tensor input) => full(target.ToArray(), value, dtype: input.dtype, device: input.device);
    }

    private sealed class LinearUniform(Shape target, long seed) : WeightTransform
    {
        private double Bound => 1.0 / Math.Sqrt(Math.Max(1, target.ElementCount / Math.Max(1, target[0])));

        public override string Op => "reinit.linear-default";

        public override Introduced Introduces => Introduced.Random;

        public override string Describe() => FormattableString.Invariant($"reinitialise {target} as PyTorch initialises a Linear layer (uniform ±{Bound:0.####} = 1/√fan_in, seed {seed})");

        public override Shape OutputShape(Shape input) => target;

        protected override Tensor ApplyCore(Tensor input) =>
            SeededDraw(seed, input, gen => (rand(target.ToArray(), dtype: ScalarType.Float64, generator: gen) * 2 - 1) * Bound);
    }

    private sealed class Kaiming(Shape target, long seed) : WeightTransform
    {
        public override string Op => "reinit.kaiming-normal";

        public override Introduced Introduces => Introduced.Random;

        public override string Describe() => FormattableString.Invariant($"reinitialise {target} with Kaiming-normal (fan_out, relu, std {ChannelFill.KaimingStd(target):0.####}, seed {seed})");

        public override Shape OutputShape(Shape input) => target;

        protected override Tensor ApplyCore(Tensor input) =>
            SeededDraw(seed, input, gen => randn(target.ToArray(), dtype: ScalarType.Float64, generator: gen) * ChannelFill.KaimingStd(target));
    }

    /// <summary>
    /// A re-initialisation's values: drawn in float64 from a generator seeded with <paramref name="seed"/> (the same
    /// seed gives the same values whatever the target's dtype), then cast to the input's dtype and device.
    /// </summary>
    private static Tensor SeededDraw(long seed, Tensor input, Func<Generator, Tensor> draw)
    {
        using var gen = new Generator((ulong)seed);
        using var values = draw(gen);
        return values.to(input.dtype, input.device);
    }
}

/// <summary>Element-wise functions, for linked layers (the seed question's square) and scaling.</summary>
public static class ElementWise
{
    /// <summary>The element-wise square.</summary>
    public static WeightTransform Square { get; } = Map(t => t.square(), "square", "square every element");

    /// <summary>Multiplies every element by a constant.</summary>
    public static WeightTransform Scale(double factor) =>
        Map(t => t * factor, "scale", FormattableString.Invariant($"multiply by {factor}"));

    /// <summary>
    /// Any shape-preserving differentiable function. The function must not change the shape (checked at apply time;
    /// use a custom <see cref="WeightTransform"/> for shape-changing functions).
    /// </summary>
    public static WeightTransform Map(Func<Tensor, Tensor> function, string name, string? description = null) =>
        new MapTransform(function, name, description ?? name);

    private sealed class MapTransform(Func<Tensor, Tensor> function, string name, string description) : WeightTransform
    {
        public override string Op => "map." + name;

        public override string Describe() => description;

        public override Shape OutputShape(Shape input) => input;

        protected override Tensor ApplyCore(Tensor input) => function(input);
    }
}
