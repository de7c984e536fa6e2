using System.Text.Json;
using System.Text.Json.Serialization;

namespace Graft.Checkpoints.Inspection;

/// <summary>How one tensor name compares between two checkpoints.</summary>
public enum DiffKind
{
    /// <summary>The name is only in the first checkpoint.</summary>
    OnlyInA,
    /// <summary>The name is only in the second checkpoint.</summary>
    OnlyInB,
    /// <summary>Both have it with different shapes (the dtypes may differ too).</summary>
    ShapeDiffers,
    /// <summary>Both have it with the same shape and different dtypes.</summary>
    DTypeDiffers,
    /// <summary>Same name, shape and dtype. Values are not compared: a diff reads headers only.</summary>
    Same,
}

/// <summary>One tensor name and how it compares.</summary>
/// <param name="Name">The tensor name.</param>
/// <param name="Kind">How it compares.</param>
/// <param name="A">The tensor in the first checkpoint, if there.</param>
/// <param name="B">The tensor in the second checkpoint, if there.</param>
public sealed record TensorDiff(string Name, DiffKind Kind, TensorInfo? A, TensorInfo? B);

/// <summary>The tensors of one layer (a name without its last dotted part: <c>features.0</c> for <c>features.0.weight</c>).</summary>
/// <param name="Layer">The layer name; empty for top-level tensors.</param>
/// <param name="Tensors">Its tensors, in the first checkpoint's order, then the second's.</param>
public sealed record LayerDiff(string Layer, IReadOnlyList<TensorDiff> Tensors)
{
    /// <summary>True when every tensor of the layer is the same in both.</summary>
    public bool Same => Tensors.All(t => t.Kind == DiffKind.Same);
}

/// <summary>
/// What differs between two checkpoints by name, shape and dtype, grouped by layer. Made from headers only, so two
/// multi-gigabyte files compare at once; tensor values are not compared.
/// </summary>
public sealed record CheckpointDiff
{
    /// <summary>The first checkpoint's path.</summary>
    public required string A { get; init; }

    /// <summary>The second checkpoint's path.</summary>
    public required string B { get; init; }

    /// <summary>Layers in order of first appearance (the first checkpoint's order, then layers only the second has).</summary>
    public required IReadOnlyList<LayerDiff> Layers { get; init; }

    /// <summary>Every tensor, layer by layer.</summary>
    public IEnumerable<TensorDiff> Tensors => Layers.SelectMany(l => l.Tensors);

    /// <summary>How many tensor names are of <paramref name="kind"/>.</summary>
    public int Count(DiffKind kind) => Tensors.Count(t => t.Kind == kind);

    /// <summary>True when any name, shape or dtype differs.</summary>
    public bool Differs => Tensors.Any(t => t.Kind != DiffKind.Same);

    /// <summary>Compares two open checkpoints by their headers.</summary>
    public static CheckpointDiff Compare(ICheckpointReader a, ICheckpointReader b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var inB = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        foreach (var t in b.Tensors)
        {
            inB.TryAdd(t.Name, t);
        }
        var inA = new HashSet<string>(a.Tensors.Select(t => t.Name), StringComparer.Ordinal);
        var diffs = new List<TensorDiff>();
        foreach (var ta in a.Tensors)
        {
            if (!inB.TryGetValue(ta.Name, out var tb))
            {
                diffs.Add(new TensorDiff(ta.Name, DiffKind.OnlyInA, ta, null));
                continue;
            }
            var kind = ta.Shape != tb.Shape ? DiffKind.ShapeDiffers : ta.DType != tb.DType ? DiffKind.DTypeDiffers : DiffKind.Same;
            diffs.Add(new TensorDiff(ta.Name, kind, ta, tb));
        }
        diffs.AddRange(b.Tensors.Where(t => !inA.Contains(t.Name)).Select(t => new TensorDiff(t.Name, DiffKind.OnlyInB, null, t)));
        // GroupBy keeps the order of first appearance, both of groups and within them.
        var layers = diffs.GroupBy(d => TensorName.LayerOf(d.Name), StringComparer.Ordinal).Select(g => new LayerDiff(g.Key, g.ToList())).ToList();
        return new CheckpointDiff { A = a.Path, B = b.Path, Layers = layers };
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // Output for files and terminals, not HTML: keep → and ' readable.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>
    /// The diff as JSON: both paths, counts per kind, <c>differs</c>, and the layers with their tensors (kind, and for each
    /// side present its dtype in safetensors spelling and its shape).
    /// </summary>
    public string ToJson() => JsonSerializer.Serialize(new
    {
        a = A,
        b = B,
        differs = Differs,
        counts = Enum.GetValues<DiffKind>().ToDictionary(KindName, Count),
        layers = Layers.Select(l => new
        {
            layer = l.Layer,
            same = l.Same,
            tensors = l.Tensors.Select(t => new
            {
                name = t.Name,
                kind = KindName(t.Kind),
                a = Side(t.A),
                b = Side(t.B),
            }),
        }),
    }, JsonOptions);

    /// <summary>
    /// The JSON spelling of a kind: <c>only-in-a</c>, <c>only-in-b</c>, <c>shape-differs</c>, <c>dtype-differs</c>, <c>same</c>.
    /// </summary>
    public static string KindName(DiffKind kind) => kind switch
    {
        DiffKind.OnlyInA => "only-in-a",
        DiffKind.OnlyInB => "only-in-b",
        DiffKind.ShapeDiffers => "shape-differs",
        DiffKind.DTypeDiffers => "dtype-differs",
        DiffKind.Same => "same",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    private static object? Side(TensorInfo? t) => t is null ? null : new { dtype = t.DType.SafetensorsName(), shape = t.Shape.ToArray() };
}
