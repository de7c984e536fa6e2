namespace Graft.Checkpoints.TorchSharpFormat;

/// <summary>
/// libtorch's <c>ScalarType</c> codes as TorchSharp writes them, mapped to <see cref="DType"/>. Only the codes with a
/// Graft dtype are accepted; complex, quantized and newer types are refused by name so the error says what was found.
/// </summary>
internal static class ScalarTypes
{
    public static bool TryToDType(long code, out DType dtype)
    {
        switch (code)
        {
            case 0: dtype = DType.U8; return true;
            case 1: dtype = DType.I8; return true;
            case 2: dtype = DType.I16; return true;
            case 3: dtype = DType.I32; return true;
            case 4: dtype = DType.I64; return true;
            case 5: dtype = DType.F16; return true;
            case 6: dtype = DType.F32; return true;
            case 7: dtype = DType.F64; return true;
            case 11: dtype = DType.Bool; return true;
            case 15: dtype = DType.BF16; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>The code TorchSharp writes for a dtype, or null when libtorch's saver has none Graft maps.</summary>
    public static int? FromDType(DType dtype) => dtype switch
    {
        DType.U8 => 0,
        DType.I8 => 1,
        DType.I16 => 2,
        DType.I32 => 3,
        DType.I64 => 4,
        DType.F16 => 5,
        DType.F32 => 6,
        DType.F64 => 7,
        DType.Bool => 11,
        DType.BF16 => 15,
        _ => null,
    };

    public static string Describe(long code) => code switch
    {
        8 => "ComplexHalf",
        9 => "ComplexFloat",
        10 => "ComplexDouble",
        12 => "QInt8",
        13 => "QUInt8",
        14 => "QInt32",
        16 => "QUInt4x2",
        17 => "QUInt2x4",
        _ => "unknown",
    };
}
