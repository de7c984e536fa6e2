using Graft.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Graft;

/// <summary>
/// A live module's state dict seen as a checkpoint, so that one transfer implementation serves files and modules.
/// Tensors are read from the module at the time they are asked for.
/// </summary>
public sealed class StateDictCheckpoint : ICheckpointReader
{
    private readonly Dictionary<string, Tensor> _tensors;
    private readonly Dictionary<string, TensorInfo> _infos;

    /// <summary>Wraps named tensors (for example <c>module.state_dict()</c>); <paramref name="name"/> names it in reports.</summary>
    public StateDictCheckpoint(IEnumerable<KeyValuePair<string, Tensor>> tensors, string name = "<module>")
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Path = name;
        _tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var list = new List<TensorInfo>();
        foreach (var (key, t) in tensors)
        {
            var dtype = TensorBridge.ToDType(t.dtype);
            var shape = new Shape(t.shape);
            _tensors.Add(key, t);
            list.Add(new TensorInfo(key, dtype, shape, checked(shape.ElementCount * dtype.ElementSize())));
        }
        Tensors = list;
        _infos = list.ToDictionary(i => i.Name, StringComparer.Ordinal);
    }

    /// <summary>The state dict of <paramref name="module"/> as a checkpoint.</summary>
    public static StateDictCheckpoint FromModule(nn.Module module, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        return new StateDictCheckpoint(module.state_dict(), name ?? $"<{module.GetName()}>");
    }

    /// <inheritdoc/>
    public string Path { get; }

    /// <inheritdoc/>
    public string Format => "module";

    /// <inheritdoc/>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, string> Metadata { get; } = new Dictionary<string, string>();

    /// <inheritdoc/>
    public bool TryGetTensor(string name, out TensorInfo info) => _infos.TryGetValue(name, out info!);

    /// <inheritdoc/>
    public void ReadBytes(TensorInfo tensor, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var bytes = TensorBridge.ToBytes(Get(tensor));
        if (destination.Length != bytes.Length)
        {
            throw new ArgumentException($"Tensor '{tensor.Name}' has {bytes.Length} bytes; destination has {destination.Length}.", nameof(destination));
        }
        bytes.CopyTo(destination);
    }

    /// <inheritdoc/>
    public void CopyTo(TensorInfo tensor, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        destination.Write(TensorBridge.ToBytes(Get(tensor)));
    }

    /// <summary>Loads payloads into a module's state-dict tensors by name, in place; every payload must match a tensor.</summary>
    public static void LoadInto(nn.Module module, IEnumerable<TensorPayload> payloads)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(payloads);
        var sd = module.state_dict();
        foreach (var p in payloads)
        {
            if (!sd.TryGetValue(p.Name, out var dest))
            {
                throw new ArgumentException($"Module has no tensor named '{p.Name}'.");
            }
            TensorBridge.CopyInto(p, dest);
        }
    }

    /// <summary>The module's own tensor of that name (the one a load writes into).</summary>
    internal Tensor Tensor(string name) => Get(_infos.TryGetValue(name, out var info) ? info : throw new ArgumentException($"{Path} has no tensor '{name}'."));

    /// <summary>Nothing to release: the tensors belong to their module.</summary>
    public void Dispose()
    {
    }

    private Tensor Get(TensorInfo info) =>
        _tensors.TryGetValue(info.Name, out var t) ? t : throw new ArgumentException($"{Path} has no tensor '{info.Name}'.");
}
