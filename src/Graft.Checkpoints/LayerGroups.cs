namespace Graft.Checkpoints;

/// <summary>
/// Tensors grouped by layer (<see cref="TensorName.Layer"/>): layers in order of first appearance, each layer's tensors
/// in their order. Held as two integer arrays, where LINQ's grouping made an object, an array and a key string per
/// layer: a header can declare hundreds of thousands of layers, and the planner, the name matcher and the diff all
/// group by layer.
/// </summary>
internal sealed class LayerGroups
{
    private readonly int[] _start;
    private readonly int[] _members;

    private LayerGroups(int[] start, int[] members)
    {
        _start = start;
        _members = members;
    }

    /// <summary>Groups <paramref name="count"/> tensors whose names <paramref name="nameOf"/> gives by index.</summary>
    public static LayerGroups Of(int count, Func<int, string> nameOf)
    {
        var layerOf = new int[count];
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        // Looked up by span: only a new layer's name becomes a string.
        var lookup = ids.GetAlternateLookup<ReadOnlySpan<char>>();
        for (int i = 0; i < count; i++)
        {
            var name = nameOf(i);
            int dot = name.LastIndexOf('.');
            var layer = dot < 0 ? ReadOnlySpan<char>.Empty : name.AsSpan(0, dot);
            if (!lookup.TryGetValue(layer, out var id))
            {
                id = ids.Count;
                lookup[layer] = id;
            }
            layerOf[i] = id;
        }
        var start = new int[ids.Count + 1];
        foreach (var id in layerOf)
        {
            start[id + 1]++;
        }
        for (int l = 0; l < ids.Count; l++)
        {
            start[l + 1] += start[l];
        }
        var members = new int[count];
        var next = start[..^1];
        for (int i = 0; i < count; i++)
        {
            members[next[layerOf[i]]++] = i;
        }
        return new LayerGroups(start, members);
    }

    /// <summary>Groups <paramref name="tensors"/> by layer.</summary>
    public static LayerGroups Of(IReadOnlyList<TensorInfo> tensors) => Of(tensors.Count, i => tensors[i].Name);

    /// <summary>Number of layers.</summary>
    public int Count => _start.Length - 1;

    /// <summary>The indices of layer <paramref name="layer"/>'s tensors, in order.</summary>
    public ReadOnlySpan<int> Members(int layer) => _members.AsSpan(_start[layer], _start[layer + 1] - _start[layer]);

    /// <summary>The index of layer <paramref name="layer"/>'s first tensor (its layer name is that tensor's).</summary>
    public int First(int layer) => _members[_start[layer]];

    /// <summary>Where layer <paramref name="layer"/>'s tensors start in <see cref="Order"/>, and how many there are.</summary>
    public (int Start, int Length) Range(int layer) => (_start[layer], _start[layer + 1] - _start[layer]);

    /// <summary>Every tensor index, layer by layer.</summary>
    public ReadOnlySpan<int> Order => _members;
}
