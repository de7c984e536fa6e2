using System.Globalization;
using Graft.Checkpoints;
using Graft.Checkpoints.Transformers;
using Graft.Transfer;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transformers;

/// <summary>
/// Measures whether a transformer transfer kept the function: the source's and the output's logits, computed in float64
/// by <see cref="DecoderForward"/> on <see cref="Sequences"/> seeded sequences of <see cref="TokensPerSequence"/> tokens
/// (drawn below both vocabularies' sizes), compared over the tokens both vocabularies have. A transfer whose plan claims
/// the function is kept (<see cref="TransformerPlan.FunctionProblems"/> empty) fails when the largest difference exceeds
/// 64 unit roundoffs of the coarsest dtype the transfer rounds in (<see cref="ToleranceOf"/>; at least float32's 3.8e-6
/// of the largest logit, the bound the tests hold the planner to); a transfer that does not claim it is measured only on
/// request.
/// </summary>
/// <remarks>
/// <see cref="WeightTransfer.Files"/> runs it on the very bytes it writes (captured as the writer takes them), before
/// the output is committed, so a failing check leaves nothing behind. Cost: the written bytes kept until they are read,
/// both models in float64 (8 bytes a parameter each), and 64 tokens through each: under a second on the tiny test
/// models. Models of more than
/// <see cref="MaxParameters"/> parameters are not measured unless asked (<see cref="LogitCheckMode.Always"/>): float64
/// copies of a 7B model do not fit in memory.
/// </remarks>
public static class LogitCheck
{
    /// <summary>The most parameters either model may have for <see cref="LogitCheckMode.Auto"/> to measure (64 M: 512 MB in float64).</summary>
    public const long MaxParameters = 64_000_000;

    /// <summary>Token sequences compared.</summary>
    public const int Sequences = 4;

    /// <summary>Tokens per sequence.</summary>
    public const int TokensPerSequence = 16;

    /// <summary>Seed of the token sequences.</summary>
    public const int Seed = 25;

    /// <summary>
    /// Measures <paramref name="output"/> (architecture <paramref name="t"/>) against <paramref name="source"/>
    /// (<paramref name="s"/>); <paramref name="claimed"/> says whether the function is meant to be kept (it sets
    /// <see cref="LogitCheckResult.Claimed"/>; nothing is thrown here).
    /// </summary>
    /// <exception cref="ArgumentException">A tensor a model needs is missing, or has a dtype TorchSharp cannot hold.</exception>
    public static LogitCheckResult Measure(ICheckpointReader source, TransformerConfig s, ICheckpointReader output, TransformerConfig t, bool claimed = true)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(t);
        return Measure(FromReader(source), s, FromReader(output), t, claimed, 64 * UnitRoundoff(source.Tensors.Concat(output.Tensors).Select(x => x.DType)));
    }

    private static LogitCheckResult Measure(Func<string, Tensor?> source, TransformerConfig s, Func<string, Tensor?> output, TransformerConfig t, bool claimed,
        double tolerance)
    {
        TensorBridge.AfterWarmUp();
        // libtorch's CPU kernels are checked before they are trusted with a verdict (DESIGN.md), as Verify does.
        Numerics.NumericsGuard.Ensure();
        int vocab = Math.Min(s.VocabSize, t.VocabSize);
        double worst = 0, scale = 0;
        // Each tensor is read and widened to float64 once per model, not once per sequence.
        using var sourceCache = new Cache(source);
        using var outputCache = new Cache(output);
        (source, output) = (sourceCache.Get, outputCache.Get);
        foreach (var tokens in TokenSequences(vocab))
        {
            using var scope = NewDisposeScope();
            var a = DecoderForward.Logits(s, source, tokens).narrow(1, 0, vocab);
            var b = DecoderForward.Logits(t, output, tokens).narrow(1, 0, vocab);
            double d = (a - b).abs().max().item<double>(), m = a.abs().max().item<double>();
            // NaN must fail: a NaN difference becomes infinite, never "within the tolerance".
            worst = Math.Max(worst, double.IsNaN(d) ? double.PositiveInfinity : d);
            scale = Math.Max(scale, double.IsNaN(m) ? double.PositiveInfinity : m);
        }
        double relative = scale > 0 && double.IsFinite(scale) ? worst / scale : worst == 0 ? 0 : double.PositiveInfinity;
        return new LogitCheckResult
        {
            Measured = true, Claimed = claimed, Sequences = Sequences, TokensPerSequence = TokensPerSequence,
            MaxAbsDifference = worst, MaxAbsLogit = scale, Relative = relative,
            Tolerance = tolerance,
        };
    }

    /// <summary>The token sequences compared: <see cref="Sequences"/> of <see cref="TokensPerSequence"/>, uniform below <paramref name="vocab"/>, from <see cref="Seed"/>.</summary>
    internal static IReadOnlyList<long[]> TokenSequences(int vocab)
    {
        var rng = new Random(Seed);
        return Enumerable.Range(0, Sequences).Select(_ => Enumerable.Range(0, TokensPerSequence).Select(_ => (long)rng.Next(vocab)).ToArray()).ToList();
    }

    /// <summary>
    /// The tolerance of a transfer measured against its plan: 64 unit roundoffs of the coarsest dtype in which the transfer
    /// itself rounds a value, and never less than float32's (the bound the tests hold the planner to). Copies, zeros and
    /// scales by powers of two (HyperCloning's halvings, <c>heads.repeat</c>, identity blocks, splits) are exact in any
    /// dtype, so a bfloat16 model widened ×2 is held to float32's 3.8e-6 of the largest logit, not to bfloat16's 0.25;
    /// a division by 3, noise, means, a narrowing cast or a reinitialisation rounds in its target's dtype.
    /// </summary>
    internal static double ToleranceOf(TransferPlan plan)
    {
        var rounded = new List<DType> { DType.F32 };
        foreach (var t in plan.Targets)
        {
            bool exact = t.Status switch
            {
                TargetStatus.Copied or TargetStatus.Kept => true,
                TargetStatus.Cast or TargetStatus.Adapted when t.Source is { } src =>
                    UnitRoundoff([t.Target.DType]) <= UnitRoundoff([src.DType]) && ExactSteps(t.Transform, src.Shape),
                _ => false,
            };
            if (!exact)
            {
                rounded.Add(t.Target.DType);
            }
        }
        return 64 * UnitRoundoff(rounded);
    }

    /// <summary>True when every step of <paramref name="transform"/> only moves values, zeroes them or scales them by a power of two.</summary>
    private static bool ExactSteps(WeightTransform transform, Shape shape)
    {
        foreach (var step in Chain.StepsOf(transform))
        {
            if (ReferenceEquals(step, WeightTransform.Identity))
            {
                continue;
            }
            if (step is ConcatRows concat)
            {
                if (!concat.Parts.All(p => ExactSteps(p.Transform, shape.With(0, p.Rows))))
                {
                    return false;
                }
            }
            else if (step.AsGather(shape) is not { } gather || !(gather.Zero || IsPowerOfTwo(Math.Abs(gather.Scale))))
            {
                return false;
            }
            shape = step.OutputShape(shape);
        }
        return true;
    }

    private static bool IsPowerOfTwo(double x) => double.IsNormal(x) && BitConverter.DoubleToInt64Bits(x) % (1L << 52) == 0;

    /// <summary>The unit roundoff of the coarsest floating dtype among <paramref name="types"/> (float32's 2⁻²⁴ when none is floating).</summary>
    private static double UnitRoundoff(IEnumerable<DType> types)
    {
        double u = Math.ScaleB(1, -53);
        bool any = false;
        foreach (var d in types.Where(d => d.IsFloatingPoint()))
        {
            any = true;
            u = Math.Max(u, d switch
            {
                DType.F64 => Math.ScaleB(1, -53),
                DType.F32 => Math.ScaleB(1, -24),
                DType.F16 => Math.ScaleB(1, -11),
                DType.BF16 => Math.ScaleB(1, -8),
                _ => Math.ScaleB(1, -4),
            });
        }
        return any ? u : Math.ScaleB(1, -24);
    }

    private static Func<string, Tensor?> FromReader(ICheckpointReader reader) => name =>
    {
        if (!reader.TryGetTensor(name, out var info))
        {
            return null;
        }
        return ToFloat64(TensorBridge.Read(reader, info));
    };

    /// <summary><paramref name="raw"/> as float64: itself when it already is, else a converted copy (and <paramref name="raw"/> disposed).</summary>
    private static Tensor ToFloat64(Tensor raw)
    {
        if (raw.dtype == ScalarType.Float64)
        {
            return raw;
        }
        using (raw)
        {
            return raw.to(ScalarType.Float64);
        }
    }

    private static Tensor FromBytes(string name, DType dtype, Shape shape, byte[] bytes)
    {
        var type = TensorBridge.ToScalarType(dtype) ?? throw new ArgumentException($"tensor '{name}' has dtype {dtype}, which TorchSharp cannot hold.");
        var raw = empty(shape.ToArray(), dtype: type);
        bytes.CopyTo(raw.bytes);
        return ToFloat64(raw);
    }

    /// <summary>A test seam: replaces output payloads before they are written and captured (a deliberately broken transfer).</summary>
    internal static readonly AsyncLocal<Func<TensorPayload, TensorPayload>?> InjectForTests = new();

    /// <summary>
    /// The check of one file transfer, decided from its plan before anything is written: null for a plan not made by
    /// role; otherwise a session that captures the outputs (when it will measure) and measures once they are written.
    /// </summary>
    internal static Session? Prepare(TransferPlan plan, ICheckpointReader source, LogitCheckMode mode, long maxParameters = MaxParameters)
    {
        if (plan.Transformer is not { } byRole)
        {
            return null;
        }
        bool claimed = byRole.FunctionProblems.Count == 0;
        long sourceParameters = source.Tensors.Sum(x => x.Shape.ElementCount);
        long outputParameters = plan.Targets.Sum(x => x.Target.Shape.ElementCount);
        string? skip = mode switch
        {
            LogitCheckMode.Never => "--check-logits never (LogitCheckMode.Never)",
            LogitCheckMode.Auto when !claimed => "the plan does not claim the function is kept (its notes say why); --check-logits always (LogitCheckMode.Always) measures the change",
            LogitCheckMode.Auto when Math.Max(sourceParameters, outputParameters) > maxParameters =>
                string.Create(CultureInfo.InvariantCulture, $"model larger than {maxParameters / 1e6:0.###} M parameters (source {sourceParameters / 1e6:0.#} M, output {outputParameters / 1e6:0.#} M); --check-logits always (LogitCheckMode.Always) measures it anyway"),
            _ => null,
        };
        if (skip is null && plan.Targets.Select(x => x.Target.DType).Concat(source.Tensors.Select(x => x.DType))
                .Where(d => d.IsFloatingPoint() && TensorBridge.ToScalarType(d) is null).Cast<DType?>().FirstOrDefault() is { } odd)
        {
            skip = $"a tensor of dtype {odd}, which TorchSharp cannot compute with";
        }
        return new Session(byRole, source, claimed, skip, ToleranceOf(plan));
    }

    /// <summary>One file transfer's check: <see cref="Capture"/> the outputs as they are written, then <see cref="Finish"/>.</summary>
    internal sealed class Session(TransformerPlan plan, ICheckpointReader source, bool claimed, string? skip, double tolerance)
    {
        private readonly Dictionary<string, (DType DType, Shape Shape, byte[] Bytes)> _written = new(StringComparer.Ordinal);

        /// <summary>Why nothing will be measured, or null.</summary>
        public string? NotMeasuredReason => skip;

        /// <summary>The outputs to write: unchanged when nothing will be measured, else each keeping a copy of the bytes it writes.</summary>
        public IReadOnlyList<TensorPayload> Capture(IReadOnlyList<TensorPayload> outputs)
        {
            var inject = InjectForTests.Value;
            if (inject is not null)
            {
                outputs = outputs.Select(inject).ToList();
            }
            return skip is not null ? outputs : outputs.Select(p => (TensorPayload)new Captured(p, _written)).ToList();
        }

        /// <summary>Measures what was written; throws when the plan claims the function and the output does not compute it.</summary>
        /// <exception cref="TransferStrictException">Measured, claimed, and over the tolerance.</exception>
        public LogitCheckResult Finish()
        {
            if (skip is not null)
            {
                return new LogitCheckResult { Measured = false, NotMeasuredReason = skip, Claimed = claimed };
            }
            // Each written tensor is widened once (the measurement caches it); its bytes are let go as soon as it is.
            Tensor? Output(string name) => _written.Remove(name, out var w) ? FromBytes(name, w.DType, w.Shape, w.Bytes) : null;
            LogitCheckResult result;
            try
            {
                result = Measure(FromReader(source), plan.Source, Output, plan.Target, claimed, tolerance);
            }
            catch (ArgumentException e)
            {
                // A layout the forward pass does not know (the planner read it, the check cannot run it): said, not hidden.
                return new LogitCheckResult { Measured = false, NotMeasuredReason = $"the forward pass could not run: {e.Message}", Claimed = claimed };
            }
            if (!result.Passed)
            {
                throw new TransferStrictException([$"logits {result.Describe()}"],
                    "the logits check: the output does not compute the source's function, though the plan claims it does");
            }
            return result;
        }
    }

    /// <summary>Tensors loaded once and kept out of the forward pass's dispose scope until the measurement ends.</summary>
    private sealed class Cache(Func<string, Tensor?> load) : IDisposable
    {
        private readonly Dictionary<string, Tensor?> _tensors = new(StringComparer.Ordinal);

        public Tensor? Get(string name)
        {
            if (!_tensors.TryGetValue(name, out var t))
            {
                t = load(name);
                t?.DetachFromDisposeScope();
                _tensors[name] = t;
            }
            return t;
        }

        public void Dispose()
        {
            foreach (var t in _tensors.Values)
            {
                t?.Dispose();
            }
        }
    }

    /// <summary>Writes like the payload it wraps and keeps a copy of the bytes it wrote.</summary>
    private sealed class Captured(TensorPayload inner, Dictionary<string, (DType, Shape, byte[])> into) : TensorPayload(inner.Name, inner.DType, inner.Shape)
    {
        public override bool IsComputed => inner.IsComputed;

        public override void WriteTo(Stream destination)
        {
            using var copy = new MemoryStream(checked((int)ByteLength));
            inner.WriteTo(copy);
            var bytes = copy.ToArray();
            destination.Write(bytes);
            lock (into)
            {
                into[Name] = (DType, Shape, bytes);
            }
        }
    }
}
