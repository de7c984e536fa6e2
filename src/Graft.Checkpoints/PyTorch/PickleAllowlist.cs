namespace Graft.Checkpoints.PyTorch;

/// <summary>
/// The only globals a PyTorch pickle may name. Each entry is here because <c>torch.save</c> of a state dict (or a
/// training checkpoint holding one) really emits it, and each is interpreted by Graft, never imported or called.
/// </summary>
internal static class PickleAllowlist
{
    private static readonly Dictionary<(string Module, string Name), PyGlobal> Allowed = Build();

    // Storage classes torch has but Graft has no DType for: named precisely instead of "forbidden".
    private static readonly HashSet<string> KnownUnsupportedStorages = new(StringComparer.Ordinal)
    {
        "ComplexFloatStorage", "ComplexDoubleStorage", "ComplexHalfStorage", "QInt8Storage", "QUInt8Storage",
        "QInt32Storage", "QUInt4x2Storage", "QUInt2x4Storage", "UntypedStorage",
    };

    public static bool TryResolve(string module, string name, out PyGlobal global, out bool unsupportedStorage)
    {
        unsupportedStorage = module == "torch" && KnownUnsupportedStorages.Contains(name);
        return Allowed.TryGetValue((module, name), out global!);
    }

    private static Dictionary<(string, string), PyGlobal> Build()
    {
        var d = new Dictionary<(string, string), PyGlobal>();
        void Add(string module, string name, PyGlobalKind kind, DType dtype = default) => d[(module, name)] = new PyGlobal(module, name, kind, dtype);

        // Every state dict is an OrderedDict, pickled as OrderedDict() then SETITEMS (and BUILD for _metadata).
        Add("collections", "OrderedDict", PyGlobalKind.OrderedDict);
        // Every tensor: _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks).
        Add("torch._utils", "_rebuild_tensor_v2", PyGlobalKind.RebuildTensorV2);
        // nn.Parameter values (state_dict(keep_vars=True), or whole parameter lists) wrap a tensor.
        Add("torch._utils", "_rebuild_parameter", PyGlobalKind.RebuildParameter);
        // Shapes stored beside weights (for example in training metadata) are torch.Size tuples.
        Add("torch", "Size", PyGlobalKind.TorchSize);
        // Protocol 2 has no bytes opcode: bytes values are pickled as _codecs.encode(str, 'latin1').
        Add("_codecs", "encode", PyGlobalKind.CodecsEncode);
        // Storage classes appear only inside persistent ids, where they give the element type.
        Add("torch", "FloatStorage", PyGlobalKind.StorageClass, DType.F32);
        Add("torch", "HalfStorage", PyGlobalKind.StorageClass, DType.F16);
        Add("torch", "BFloat16Storage", PyGlobalKind.StorageClass, DType.BF16);
        Add("torch", "DoubleStorage", PyGlobalKind.StorageClass, DType.F64);
        Add("torch", "ByteStorage", PyGlobalKind.StorageClass, DType.U8);
        Add("torch", "CharStorage", PyGlobalKind.StorageClass, DType.I8);
        Add("torch", "ShortStorage", PyGlobalKind.StorageClass, DType.I16);
        Add("torch", "IntStorage", PyGlobalKind.StorageClass, DType.I32);
        Add("torch", "LongStorage", PyGlobalKind.StorageClass, DType.I64);
        Add("torch", "BoolStorage", PyGlobalKind.StorageClass, DType.Bool);
        return d;
    }

    /// <summary>The pickle class name torch uses for a dtype's storage, for the writer.</summary>
    public static string StorageClassName(DType dtype) => dtype switch
    {
        DType.F32 => "FloatStorage",
        DType.F16 => "HalfStorage",
        DType.BF16 => "BFloat16Storage",
        DType.F64 => "DoubleStorage",
        DType.U8 => "ByteStorage",
        DType.I8 => "CharStorage",
        DType.I16 => "ShortStorage",
        DType.I32 => "IntStorage",
        DType.I64 => "LongStorage",
        DType.Bool => "BoolStorage",
        _ => throw new InvalidInputException($"PyTorch 1.13 storages have no {dtype} type (safetensors holds it)."),
    };
}
