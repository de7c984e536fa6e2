using System.Globalization;
using Graft.Checkpoints;
using Graft.Transforms;
using static TorchSharp.torch;

namespace Graft.Transformers;

/// <summary>
/// Builds a fused projection from row blocks: the input's rows are cut into <see cref="Parts"/> (q, k, v; or gate, up),
/// each part goes through its own chain (the one its unfused role would get: K/V heads repeated or pooled, HyperCloning
/// copies …) and the results are stacked again. The input is a fused source (Phi-3's <c>qkv_proj</c>) or the unfused
/// source tensors stacked in that order; either way the plan shows every part's steps, shown as <c>concat</c>.
/// </summary>
public sealed class ConcatRows : WeightTransform
{
    private readonly Part[] _parts;

    /// <summary>One row block: its name, how many input rows it reads, and the chain those rows go through.</summary>
    /// <param name="Name">The part (<c>q</c>, <c>k</c>, <c>v</c>, <c>gate</c>, <c>up</c>).</param>
    /// <param name="Rows">Rows of the input it reads.</param>
    /// <param name="Transform">What makes its output rows.</param>
    public sealed record Part(string Name, long Rows, WeightTransform Transform);

    /// <summary>Creates the transform.</summary>
    /// <param name="parts">The row blocks, in row order (at least one).</param>
    public ConcatRows(IEnumerable<Part> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        _parts = parts.ToArray();
        if (_parts.Length == 0 || _parts.Any(p => p is null || p.Rows <= 0 || p.Transform is null || string.IsNullOrEmpty(p.Name)))
        {
            throw new ArgumentException("A fused projection needs one or more named parts of at least one row each.", nameof(parts));
        }
    }

    /// <summary>The row blocks, in row order.</summary>
    public IReadOnlyList<Part> Parts => _parts;

    /// <inheritdoc/>
    public override string Op => "concat";

    /// <inheritdoc/>
    public override Introduced Introduces => _parts.Select(p => p.Transform.Introduces).Max();

    /// <inheritdoc/>
    public override string Describe() =>
        "rows [" + string.Join(" | ", _parts.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Name} {p.Rows}"))) + "], each as its unfused role, stacked: "
        + string.Join("; ", _parts.Select(p => $"{p.Name}: {(ReferenceEquals(p.Transform, Identity) ? "as is" : p.Transform.Describe())}"));

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        long rows = _parts.Sum(p => p.Rows);
        if (input.Rank == 0 || input[0] != rows)
        {
            throw new ArgumentException($"{Op}: input shape {input} does not have the {rows} rows of its parts ({string.Join(" + ", _parts.Select(p => p.Rows))}).");
        }
        Shape? first = null;
        long total = 0;
        foreach (var p in _parts)
        {
            var o = p.Transform.OutputShape(input.With(0, p.Rows));
            if (first is not null && !o.Skip(1).SequenceEqual(first.Skip(1)))
            {
                throw new ArgumentException($"{Op}: part {p.Name} gives {o}, which does not stack under {first}.");
            }
            first ??= o;
            total += o[0];
        }
        return first!.With(0, total);
    }

    /// <inheritdoc/>
    protected override Tensor ApplyCore(Tensor input)
    {
        var outputs = new List<Tensor>(_parts.Length);
        long start = 0;
        foreach (var p in _parts)
        {
            outputs.Add(p.Transform.Apply(input.narrow(0, start, p.Rows)));
            start += p.Rows;
        }
        return cat(outputs, 0);
    }

    /// <summary>A twin when every part's chain has one: slices, the parts' twins, and a concatenation.</summary>
    public override bool HasTwin => _parts.All(p => p.Transform.HasTwin);

    /// <inheritdoc/>
    protected override T[] ApplyTwinCore<T>(ReadOnlySpan<T> input, Shape shape)
    {
        long row = shape.ElementCount / shape[0];
        var outputs = new List<T[]>(_parts.Length);
        long start = 0;
        foreach (var p in _parts)
        {
            var part = input.Slice(checked((int)(start * row)), checked((int)(p.Rows * row)));
            outputs.Add(p.Transform.ApplyTwin<T>(part, shape.With(0, p.Rows)));
            start += p.Rows;
        }
        var result = new T[outputs.Sum(o => (long)o.Length)];
        long at = 0;
        foreach (var o in outputs)
        {
            o.CopyTo(result, at);
            at += o.Length;
        }
        return result;
    }
}
