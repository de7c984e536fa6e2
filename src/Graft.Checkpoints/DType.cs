namespace Graft.Checkpoints;

/// <summary>Element types that checkpoints store. Names follow safetensors; sizes are in bytes.</summary>
public enum DType
{
    /// <summary>Boolean, one byte.</summary>
    Bool,
    /// <summary>Unsigned 8-bit integer.</summary>
    U8,
    /// <summary>Signed 8-bit integer.</summary>
    I8,
    /// <summary>8-bit float, 5 exponent bits, 2 mantissa bits.</summary>
    F8E5M2,
    /// <summary>8-bit float, 4 exponent bits, 3 mantissa bits.</summary>
    F8E4M3,
    /// <summary>Signed 16-bit integer.</summary>
    I16,
    /// <summary>Unsigned 16-bit integer.</summary>
    U16,
    /// <summary>IEEE half precision.</summary>
    F16,
    /// <summary>bfloat16.</summary>
    BF16,
    /// <summary>Signed 32-bit integer.</summary>
    I32,
    /// <summary>Unsigned 32-bit integer.</summary>
    U32,
    /// <summary>IEEE single precision.</summary>
    F32,
    /// <summary>IEEE double precision.</summary>
    F64,
    /// <summary>Signed 64-bit integer.</summary>
    I64,
    /// <summary>Unsigned 64-bit integer.</summary>
    U64,
}

/// <summary>Facts about <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Size of one element in bytes.</summary>
    public static int ElementSize(this DType t) => t switch
    {
        DType.Bool or DType.U8 or DType.I8 or DType.F8E5M2 or DType.F8E4M3 => 1,
        DType.I16 or DType.U16 or DType.F16 or DType.BF16 => 2,
        DType.I32 or DType.U32 or DType.F32 => 4,
        DType.F64 or DType.I64 or DType.U64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "Unknown dtype."),
    };

    /// <summary>True for floating-point types (the ones weight transforms compute on).</summary>
    public static bool IsFloatingPoint(this DType t) =>
        t is DType.F16 or DType.BF16 or DType.F32 or DType.F64 or DType.F8E4M3 or DType.F8E5M2;

    /// <summary>The safetensors spelling (<c>F32</c>, <c>BF16</c>, <c>F8_E4M3</c> …).</summary>
    public static string SafetensorsName(this DType t) => t switch
    {
        DType.F8E5M2 => "F8_E5M2",
        DType.F8E4M3 => "F8_E4M3",
        _ => t.ToString().ToUpperInvariant(),
    };

    /// <summary>Parses a safetensors dtype name; returns false for names Graft does not know.</summary>
    public static bool TryParseSafetensors(string name, out DType dtype)
    {
        switch (name)
        {
            case "BOOL": dtype = DType.Bool; return true;
            case "U8": dtype = DType.U8; return true;
            case "I8": dtype = DType.I8; return true;
            case "F8_E5M2": dtype = DType.F8E5M2; return true;
            case "F8_E4M3": dtype = DType.F8E4M3; return true;
            case "I16": dtype = DType.I16; return true;
            case "U16": dtype = DType.U16; return true;
            case "F16": dtype = DType.F16; return true;
            case "BF16": dtype = DType.BF16; return true;
            case "I32": dtype = DType.I32; return true;
            case "U32": dtype = DType.U32; return true;
            case "F32": dtype = DType.F32; return true;
            case "F64": dtype = DType.F64; return true;
            case "I64": dtype = DType.I64; return true;
            case "U64": dtype = DType.U64; return true;
            default: dtype = default; return false;
        }
    }
}
