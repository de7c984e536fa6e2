using System.Runtime.InteropServices;
using Graft.Checkpoints;
using static TorchSharp.torch;

namespace Graft;

/// <summary>
/// Moves tensors between checkpoint bytes (Graft.Checkpoints, no TorchSharp) and TorchSharp tensors.
/// The only place that maps <see cref="DType"/> to <see cref="ScalarType"/>.
/// </summary>
public static class TensorBridge
{
    /// <summary>The TorchSharp element type for a checkpoint dtype, or null when TorchSharp has none (U16, U32, U64, F8).</summary>
    public static ScalarType? ToScalarType(DType dtype) => dtype switch
    {
        DType.Bool => ScalarType.Bool,
        DType.U8 => ScalarType.Byte,
        DType.I8 => ScalarType.Int8,
        DType.I16 => ScalarType.Int16,
        DType.I32 => ScalarType.Int32,
        DType.I64 => ScalarType.Int64,
        DType.F16 => ScalarType.Float16,
        DType.BF16 => ScalarType.BFloat16,
        DType.F32 => ScalarType.Float32,
        DType.F64 => ScalarType.Float64,
        _ => null,
    };

    /// <summary>The checkpoint dtype for a TorchSharp element type.</summary>
    /// <exception cref="NotSupportedException">Complex and quantised types have no checkpoint dtype here.</exception>
    public static DType ToDType(ScalarType type) => type switch
    {
        ScalarType.Bool => DType.Bool,
        ScalarType.Byte => DType.U8,
        ScalarType.Int8 => DType.I8,
        ScalarType.Int16 => DType.I16,
        ScalarType.Int32 => DType.I32,
        ScalarType.Int64 => DType.I64,
        ScalarType.Float16 => DType.F16,
        ScalarType.BFloat16 => DType.BF16,
        ScalarType.Float32 => DType.F32,
        ScalarType.Float64 => DType.F64,
        _ => throw new NotSupportedException($"TorchSharp type {type} has no checkpoint dtype."),
    };

    private static readonly Lazy<Task> s_warmUp = new(() => Task.Run(static () =>
    {
        using (var t = TorchSharp.torch.zeros(1))
        {
        }
        try
        {
            // The numerics guard's self-check runs here too, off the caller's path; its verdict is kept for the caller's
            // own Ensure().
            Numerics.NumericsGuard.Ensure();
        }
        catch (Numerics.NumericsException)
        {
        }
    }));

    /// <summary>
    /// Starts loading libtorch, and running the numerics guard (<see cref="Numerics.NumericsGuard"/>), on a thread-pool
    /// thread (once per process) and returns at once. Loading takes a good part
    /// of a second (a 450 MB library and its operator registry); a caller that computes after streaming other work (a
    /// transfer that copies most tensors and adapts a few) overlaps the two. Code that computes calls
    /// <see cref="AfterWarmUp"/> first, so the load never runs on two threads at once.
    /// </summary>
    public static void WarmUp() => _ = s_warmUp.Value;

    /// <summary>
    /// Waits for a load started by <see cref="WarmUp"/>, if any. A failed load is not rethrown here: the caller's own
    /// first use of TorchSharp then fails with TorchSharp's message, as it would have without the warm-up.
    /// </summary>
    public static void AfterWarmUp()
    {
        if (s_warmUp.IsValueCreated)
        {
            try
            {
                s_warmUp.Value.Wait();
            }
            catch (AggregateException)
            {
            }
        }
    }

    /// <summary>Reads one tensor of a checkpoint into a new CPU tensor.</summary>
    /// <exception cref="NotSupportedException">TorchSharp has no type for the tensor's dtype.</exception>
    public static Tensor Read(ICheckpointReader reader, TensorInfo info)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(info);
        var type = ToScalarType(info.DType)
            ?? throw new NotSupportedException($"{reader.Path}: tensor '{info.Name}' has dtype {info.DType}, which TorchSharp cannot hold; it can only be copied as bytes.");
        var t = empty(info.Shape.ToArray(), dtype: type);
        if (info.ByteLength > 0)
        {
            reader.ReadBytes(info, t.bytes);
        }
        return t;
    }

    /// <summary>The row-major little-endian bytes of a tensor (copied; the tensor may be a non-contiguous view).</summary>
    public static byte[] ToBytes(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        using var c = tensor.detach().cpu().contiguous();
        return c.numel() == 0 ? [] : c.bytes.ToArray();
    }

    /// <summary>A payload holding a copy of a tensor's bytes, to write under <paramref name="name"/>.</summary>
    public static TensorPayload ToPayload(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return TensorPayload.FromBytes(name, ToDType(tensor.dtype), new Shape(tensor.shape), ToBytes(tensor));
    }

    /// <summary>
    /// Writes a payload's bytes into an existing tensor of the same dtype and shape (for loading into modules), on the
    /// tensor's own device. A contiguous CPU tensor receives the bytes in place, in one copy (like TorchSharp's own
    /// <c>Module.load</c>); any other tensor (a CUDA one, a non-contiguous view) gets them through one staging tensor
    /// and <c>copy_</c> under no-grad.
    /// </summary>
    public static void CopyInto(TensorPayload payload, Tensor destination)
    {
        ArgumentNullException.ThrowIfNull(payload);
        ArgumentNullException.ThrowIfNull(destination);
        if (!payload.Shape.SequenceEqual(destination.shape) || ToDType(destination.dtype) != payload.DType)
        {
            throw new ArgumentException($"Tensor '{payload.Name}': cannot load {payload.DType} {payload.Shape} into {ToDType(destination.dtype)} {new Shape(destination.shape)}.");
        }
        if (payload.ByteLength == 0)
        {
            return;
        }
        if (destination.device_type == TorchSharp.DeviceType.CPU && destination.is_contiguous() && payload.ByteLength <= int.MaxValue)
        {
            WriteInPlace(payload, destination);
            return;
        }
        using var staging = empty(payload.Shape.ToArray(), dtype: destination.dtype);
        WriteInPlace(payload, staging);
        using (no_grad())
        {
            destination.copy_(staging);
        }
    }

    /// <summary>Streams the payload straight into a contiguous CPU tensor's storage.</summary>
    private static unsafe void WriteInPlace(TensorPayload payload, Tensor destination)
    {
        var span = destination.bytes;
        if (payload.TryReadInto(span))
        {
            return;
        }
        fixed (byte* p = span)
        {
            using var stream = new UnmanagedMemoryStream(p, span.Length, span.Length, FileAccess.Write);
            payload.WriteTo(stream);
            if (stream.Position != payload.ByteLength)
            {
                throw new InvalidOperationException($"Tensor '{payload.Name}': the payload wrote {stream.Position} of {payload.ByteLength} bytes.");
            }
        }
    }
}
