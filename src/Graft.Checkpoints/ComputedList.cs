using System.Collections;

namespace Graft.Checkpoints;

/// <summary>
/// A read-only list whose items are made when read, from their index. Reports and plans of a checkpoint with hundreds
/// of thousands of tensors list one entry per tensor; holding every entry (and the arrays and strings in it) at once
/// cost several times the header's size, while the plan they are made from is already in memory. Each read makes a new
/// item: equal in value to the last one, not the same object.
/// </summary>
internal sealed class ComputedList<T>(int count, Func<int, T> item) : IReadOnlyList<T>
{
    /// <inheritdoc/>
    public int Count { get; } = count >= 0 ? count : throw new ArgumentOutOfRangeException(nameof(count));

    /// <inheritdoc/>
    public T this[int index] => (uint)index < (uint)Count ? item(index) : throw new ArgumentOutOfRangeException(nameof(index));

    /// <inheritdoc/>
    public IEnumerator<T> GetEnumerator()
    {
        for (int i = 0; i < Count; i++)
        {
            yield return item(i);
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Makes <see cref="ComputedList{T}"/>s.</summary>
internal static class ComputedList
{
    /// <summary>Each item of <paramref name="items"/> put through <paramref name="map"/> when read.</summary>
    public static IReadOnlyList<TOut> Select<TIn, TOut>(IReadOnlyList<TIn> items, Func<TIn, TOut> map) =>
        new ComputedList<TOut>(items.Count, i => map(items[i]));
}
