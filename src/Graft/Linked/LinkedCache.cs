using static TorchSharp.torch;

namespace Graft.Linked;

/// <summary>
/// A scope in which each linked layer computes its derived weight and bias once and reuses them, like PyTorch's
/// <c>parametrize.cached()</c>: for a step that runs one linked layer several times (a shared block applied to
/// several inputs, a recurrent loop). Values are not refreshed inside the scope, so an optimizer step belongs after
/// it. Scopes are per thread; a nested scope uses the outer one.
/// </summary>
public sealed class LinkedCache : IDisposable
{
    [ThreadStatic]
    private static LinkedCache? t_current;

    private readonly Dictionary<(LinkedLayer Layer, int Slot), (Tensor Value, bool Owned)> _values = new();
    private readonly bool _owner;
    private bool _disposed;

    internal LinkedCache()
    {
        _owner = t_current is null;
        if (_owner)
        {
            t_current = this;
        }
    }

    /// <summary>The active scope on this thread, or null.</summary>
    internal static LinkedCache? Current => t_current;

    /// <summary>Number of derived tensors held (for tests and diagnostics).</summary>
    public int Count => (_owner ? _values : t_current?._values)?.Count ?? 0;

    /// <summary>Ends the scope and frees the cached tensors (the autograd graph keeps what a pending backward needs).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (!_owner)
        {
            return;
        }
        foreach (var (value, owned) in _values.Values)
        {
            if (owned)
            {
                value.Dispose();
            }
        }
        _values.Clear();
        t_current = null;
    }

    internal Tensor GetOrAdd(LinkedLayer layer, int slot, Func<Tensor> source, LinkFunction function)
    {
        if (_values.TryGetValue((layer, slot), out var entry))
        {
            return entry.Value;
        }
        var input = source();
        var value = function.Apply(input);
        // A function may hand back the source tensor itself; that one belongs to the source module, never to the cache.
        var owned = value.Handle != input.Handle;
        if (owned)
        {
            // Out of any dispose scope: the caller's forward scope must not free a tensor the next call reuses.
            value = value.DetachFromDisposeScope();
        }
        _values.Add((layer, slot), (value, owned));
        return value;
    }
}
