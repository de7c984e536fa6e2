namespace Graft.Checkpoints.Onnx;

/// <summary>The ONNX specification's tables for tensor element types: the codes Graft reads and the typed fields that hold them.</summary>
internal static class OnnxDataTypes
{
    /// <summary>ONNX <c>TensorProto.DataType</c> codes Graft maps to a <see cref="DType"/>.</summary>
    internal static bool TryDType(ulong code, out DType dtype)
    {
        switch (code)
        {
            case 1: dtype = DType.F32; return true;
            case 2: dtype = DType.U8; return true;
            case 3: dtype = DType.I8; return true;
            case 4: dtype = DType.U16; return true;
            case 5: dtype = DType.I16; return true;
            case 6: dtype = DType.I32; return true;
            case 7: dtype = DType.I64; return true;
            case 9: dtype = DType.Bool; return true;
            case 10: dtype = DType.F16; return true;
            case 11: dtype = DType.F64; return true;
            case 12: dtype = DType.U32; return true;
            case 13: dtype = DType.U64; return true;
            case 16: dtype = DType.BF16; return true;
            case 17: dtype = DType.F8E4M3; return true;
            case 19: dtype = DType.F8E5M2; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>The typed repeated field the ONNX specification assigns to a dtype.</summary>
    internal static int TypedField(DType dtype) => dtype switch
    {
        DType.F32 => 4,
        DType.I64 => 7,
        DType.F64 => 10,
        DType.U32 or DType.U64 => 11,
        _ => 5,
    };
}
