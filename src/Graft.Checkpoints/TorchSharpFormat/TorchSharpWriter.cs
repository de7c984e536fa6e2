using System.Text;

namespace Graft.Checkpoints.TorchSharpFormat;

/// <summary>
/// Writes TorchSharp <c>Module.save</c> files, which <c>Module.load</c> reads back into a module whose state dict has
/// the same names, dtypes and shapes. Output is deterministic: tensors in the order given, nothing else in the file.
/// </summary>
public static class TorchSharpWriter
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> atomically (temporary file, flush, rename), so a
    /// payload that fails midway leaves the previous file, or none, behind.
    /// </summary>
    /// <exception cref="ArgumentException">Two tensors share a name, or a name is not valid Unicode.</exception>
    /// <exception cref="InvalidInputException">A dtype TorchSharp's saver has no code for (U16, U32, U64, FP8): the format was the wrong choice for these tensors.</exception>
    /// <exception cref="InvalidOperationException">A payload wrote a different number of bytes than it declared.</exception>
    public static void Write(string path, IEnumerable<TensorPayload> tensors)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        var names = Check(list);
        AtomicFile.Write(path, s => WriteTo(s, list, names));
    }

    /// <summary>Writes a <c>Module.save</c> image to a stream (not closed). A failure leaves a partial image.</summary>
    /// <exception cref="ArgumentException">Two tensors share a name, or a name is not valid Unicode.</exception>
    /// <exception cref="InvalidInputException">A dtype TorchSharp's saver has no code for.</exception>
    public static void WriteTo(Stream destination, IReadOnlyList<TensorPayload> tensors)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(tensors);
        WriteTo(destination, tensors, Check(tensors));
    }

    private static void WriteTo(Stream destination, IReadOnlyList<TensorPayload> tensors, byte[][] names)
    {
        var header = new List<byte>(64);
        Leb128(header, tensors.Count);
        destination.Write(header.ToArray());
        for (var i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            header.Clear();
            Leb128(header, names[i].Length);
            header.AddRange(names[i]);
            Leb128(header, ScalarTypes.FromDType(t.DType)!.Value);
            Leb128(header, t.Shape.Rank);
            foreach (var d in t.Shape)
            {
                Leb128(header, d);
            }
            destination.Write(header.ToArray());
            PayloadStream.WriteExactly(t, destination);
        }
    }

    private static byte[][] Check(IReadOnlyList<TensorPayload> tensors)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var names = new byte[tensors.Count][];
        for (var i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i] ?? throw new ArgumentException("The tensor list contains null.", nameof(tensors));
            if (!seen.Add(t.Name))
            {
                throw new ArgumentException($"Tensor '{t.Name}' appears more than once; Module.save names must be unique.", nameof(tensors));
            }
            if (ScalarTypes.FromDType(t.DType) is null)
            {
                throw new InvalidInputException($"Tensor '{t.Name}' is {t.DType}; TorchSharp's Module.save format has no type code for it.");
            }
            try
            {
                names[i] = StrictUtf8.GetBytes(t.Name);
            }
            catch (EncoderFallbackException ex)
            {
                throw new ArgumentException($"Tensor name '{t.Name}' is not valid Unicode (unpaired surrogate).", nameof(tensors), ex);
            }
            if (names[i].Length > TorchSharpReader.MaxNameBytes)
            {
                throw new ArgumentException($"Tensor name '{t.Name[..40]}…' is {names[i].Length} bytes; readers accept at most {TorchSharpReader.MaxNameBytes}.", nameof(tensors));
            }
        }
        return names;
    }

    /// <summary>Unsigned LEB128, the encoding TorchSharp uses for counts, type codes and dimensions.</summary>
    internal static void Leb128(List<byte> output, long value)
    {
        var v = (ulong)value;
        while (v >= 0x80)
        {
            output.Add((byte)(v | 0x80));
            v >>= 7;
        }
        output.Add((byte)v);
    }
}
