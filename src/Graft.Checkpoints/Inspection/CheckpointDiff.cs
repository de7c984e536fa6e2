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

    /// <summary>
    /// Layers in order of first appearance (the first checkpoint's order, then layers only the second has). A diff made
    /// by <see cref="Compare"/> makes each entry when it is read: equal in value every time.
    /// </summary>
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
        var inA = new HashSet<string>(a.Tensors.Count, StringComparer.Ordinal);
        foreach (var t in a.Tensors)
        {
            inA.Add(t.Name);
        }
        var diffs = new List<TensorDiff>(a.Tensors.Count);
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
        foreach (var tb in b.Tensors)
        {
            if (!inA.Contains(tb.Name))
            {
                diffs.Add(new TensorDiff(tb.Name, DiffKind.OnlyInB, null, tb));
            }
        }
        // Layers in order of first appearance, tensors in order within them; each layer's entry is made when read
        // (two files of 200,000 distinct names are 400,000 layers).
        var layers = LayerGroups.Of(diffs.Count, i => diffs[i].Name);
        var ordered = new TensorDiff[diffs.Count];
        var order = layers.Order;
        for (int i = 0; i < ordered.Length; i++)
        {
            ordered[i] = diffs[order[i]];
        }
        return new CheckpointDiff
        {
            A = a.Path,
            B = b.Path,
            Layers = new ComputedList<LayerDiff>(layers.Count, l =>
            {
                var (start, length) = layers.Range(l);
                return new LayerDiff(TensorName.LayerOf(ordered[start].Name), new ArraySegment<TensorDiff>(ordered, start, length));
            }),
        };
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
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        WriteJson(buffer);
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary><see cref="ToJson"/> written to <paramref name="utf8Json"/> as it is made, never held whole.</summary>
    public void WriteJson(Stream utf8Json) => JsonSerializer.Serialize(utf8Json, new
    {
        // Paths as the user named them (RawPath: a name that is not UTF-8 is reached through /proc/self/fd/N).
        a = RawPath.Display(A),
        b = RawPath.Display(B),
        differs = Differs,
        // Keys in camelCase like every other JSON property Graft writes; the kind values stay kebab-case like its enums.
        counts = Enum.GetValues<DiffKind>().ToDictionary(k => JsonNamingPolicy.CamelCase.ConvertName(k.ToString()), Count),
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

    private static object? Side(TensorInfo? t) => t is null ? null : new { dType = t.DType.SafetensorsName(), shape = (IReadOnlyList<long>)t.Shape };
}
