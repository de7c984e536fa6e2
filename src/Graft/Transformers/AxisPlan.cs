using Graft.Transfer;
using Graft.Transforms;

namespace Graft.Transformers;

/// <summary>
/// How one axis of a decoder changes size (hidden, intermediate, query heads, K/V heads, vocabulary): for every target
/// block the source blocks it comes from, the factor a layer reading the axis applies (1/copies for HyperCloning), and
/// whether the function survives. Every tensor with that axis applies the same map, so they stay consistent.
/// </summary>
internal sealed record AxisPlan(string Name, long From, long To, int[][] Map, double InScale, string Op, string What, string? Problem)
{
    /// <summary>True when the axis is unchanged.</summary>
    public bool IsIdentity => From == To && Map.Select((m, i) => m.Length == 1 && m[0] == i).All(x => x);

    /// <summary>The step that rebuilds this axis where it is an output (rows; an embedding's columns): no rescaling.</summary>
    public WeightTransform Out(int axis, long blockSize) =>
        IsIdentity ? WeightTransform.Identity : new BlockMap(Op, What, axis, blockSize, From, Map);

    /// <summary>The step that rebuilds this axis where a linear layer reads it (columns): copies divided by their count.</summary>
    public WeightTransform In(int axis, long blockSize) =>
        IsIdentity ? WeightTransform.Identity : new BlockMap(Op, What, axis, blockSize, From, Map, InScale);

    /// <summary>
    /// A size change by copies (a whole multiple: HyperCloning, exact when every reader divides by the count) or by
    /// keeping the first blocks (not exact). Growth by another factor is refused: nothing keeps the function there.
    /// </summary>
    /// <exception cref="TransferPlanException">The target is larger and not a whole multiple.</exception>
    public static AxisPlan Resize(string name, long from, long to, string unit)
    {
        if (to >= from && to % from == 0)
        {
            long k = to / from;
            return new AxisPlan(name, from, to, Enumerable.Range(0, (int)to).Select(i => new[] { (int)(i % from) }).ToArray(), (double)from / to,
                "tile", $"{name} {from}→{to}: {k} copies of the {from} {unit} (HyperCloning: readers divide by {k})", null);
        }
        if (to < from)
        {
            return new AxisPlan(name, from, to, Enumerable.Range(0, (int)to).Select(i => new[] { i }).ToArray(), 1.0,
                "truncate", $"{name} {from}→{to}: the first {to} {unit} kept", $"{name} {from}→{to}: only the first {to} {unit} kept, the function changes");
        }
        throw new TransferPlanException($"{name} {from}→{to}: growth by a factor that is not whole is not supported (the function-keeping growth copies whole {unit}); use a multiple of {from}.");
    }

    /// <summary>
    /// The vocabulary: old rows kept; new rows the mean of the old rows (Hugging Face's <c>resize_token_embeddings</c>
    /// default), which leaves every old token's logits unchanged; a smaller vocabulary keeps the first rows.
    /// </summary>
    public static AxisPlan Vocabulary(long from, long to)
    {
        if (to <= from)
        {
            return Resize("vocabulary", from, to, "token rows");
        }
        var all = Enumerable.Range(0, (int)from).ToArray();
        var map = Enumerable.Range(0, (int)to).Select(i => i < from ? new[] { i } : all).ToArray();
        return new AxisPlan("vocabulary", from, to, map, 1.0, "rows.mean",
            $"vocabulary {from}→{to}: the {to - from} new rows are the mean of the {from} old rows (as Hugging Face's resize_token_embeddings)", null);
    }

    /// <summary>
    /// K/V heads from the query-head map (<paramref name="query"/>): target K/V head g serves query heads
    /// g·r … g·r+r−1 (HF's <c>repeat_kv</c>); each of those comes from a source query head, which read source K/V head
    /// h // r_source. One source head for all of them: a copy (GQA → MHA by repetition, exact); several: their mean
    /// (MHA → GQA/MQA, Ainslie et al. 2023, not exact).
    /// </summary>
    public static AxisPlan KvHeads(AxisPlan query, int sourceKv, int sourceHeads, int targetKv, int targetHeads)
    {
        int rs = sourceHeads / sourceKv, rt = targetHeads / targetKv;
        var map = new int[targetKv][];
        for (int g = 0; g < targetKv; g++)
        {
            map[g] = Enumerable.Range(g * rt, rt).Select(q => query.Map[q][0] / rs).Distinct().Order().ToArray();
        }
        bool copies = map.All(m => m.Length == 1);
        var groups = map.Select(m => m.Length).Distinct().ToList();
        return copies
            ? new AxisPlan("K/V heads", sourceKv, targetKv, map, 1.0, "heads.repeat",
                $"K/V heads {sourceKv}→{targetKv}: each a copy of the K/V head its query heads read (repeat_kv), exact", null)
            : new AxisPlan("K/V heads", sourceKv, targetKv, map, 1.0, "heads.group-mean",
                $"K/V heads {sourceKv}→{targetKv}: each the mean of its group's {string.Join("/", groups)} heads (GQA uptraining, Ainslie et al. 2023)",
                $"K/V heads {sourceKv}→{targetKv} by group means: attention changes (uptrain briefly); only repetition keeps the function");
    }
}
