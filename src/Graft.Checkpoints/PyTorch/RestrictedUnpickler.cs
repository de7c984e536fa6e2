using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace Graft.Checkpoints.PyTorch;

/// <summary>
/// A pickle reader that interprets, and never executes. Only the opcodes <c>torch.save</c> emits for state dicts are
/// accepted, globals are looked up in a fixed allowlist and stay inert markers, and every opcode checks the types
/// of its operands (the CVE-2026-24747 lesson: SETITEM on something that is not a dict is an attack, not a quirk).
/// </summary>
internal sealed class RestrictedUnpickler
{
    /// <summary>Deepest MARK nesting accepted; real state dicts use three or four levels.</summary>
    public const int MaxMarkDepth = 256;

    private const int MaxGlobalLineLength = 256;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly PickleSource _in;
    private readonly string _filePath;
    private readonly string _label;
    private readonly Func<object, long, object>? _persistentLoad;
    private readonly Dictionary<long, object> _memo = [];
    private readonly List<List<object>> _metastack = [];
    private List<object> _stack = [];
    private long _opPosition;
    private byte _op;

    /// <param name="input">The pickle bytes.</param>
    /// <param name="filePath">The checkpoint file, for error messages.</param>
    /// <param name="label">Which pickle in the file (<c>data.pkl</c>, <c>the storage key list</c> …), for error messages.</param>
    /// <param name="persistentLoad">
    /// Turns a BINPERSID operand into a value (and throws for a malformed one); null forbids BINPERSID.
    /// Receives the operand and the opcode's byte position.
    /// </param>
    public RestrictedUnpickler(PickleSource input, string filePath, string label, Func<object, long, object>? persistentLoad)
    {
        _in = input;
        _filePath = filePath;
        _label = label;
        _persistentLoad = persistentLoad;
    }

    /// <summary>Reads one pickle, up to and including its STOP, and returns the value it built.</summary>
    public object Load()
    {
        while (true)
        {
            _opPosition = _in.Position;
            var b = _in.ReadByte();
            if (b < 0)
            {
                throw Corrupt("the pickle ends without a STOP opcode");
            }
            _op = (byte)b;
            switch (_op)
            {
                case Op.PROTO:
                    var proto = ReadU8();
                    if (proto is < 2 or > 5)
                    {
                        throw Error(CheckpointErrorKind.Unsupported, $"pickle protocol {proto} (only 2 to 5 are read)");
                    }
                    break;
                case Op.FRAME:
                    var frame = ReadU64();
                    if (frame > (ulong)_in.Remaining)
                    {
                        throw Corrupt($"FRAME of {frame} bytes but only {_in.Remaining} are left");
                    }
                    break;
                case Op.STOP:
                    if (_metastack.Count != 0)
                    {
                        throw Corrupt("STOP inside an unclosed MARK");
                    }
                    if (_stack.Count != 1)
                    {
                        throw _stack.Count == 0 ? Corrupt("stack underflow at STOP") : Corrupt($"STOP leaves {_stack.Count} values on the stack instead of 1");
                    }
                    return _stack[0];
                case Op.MARK:
                    if (_metastack.Count >= MaxMarkDepth)
                    {
                        throw Corrupt($"MARKs nested deeper than {MaxMarkDepth}");
                    }
                    _metastack.Add(_stack);
                    _stack = [];
                    break;
                case Op.EMPTY_DICT:
                    Push(new PyDict(ordered: false));
                    break;
                case Op.EMPTY_LIST:
                    Push(new PyList());
                    break;
                case Op.EMPTY_TUPLE:
                    Push(PyTuple.Empty);
                    break;
                case Op.TUPLE:
                    Push(new PyTuple([.. PopMark()]));
                    break;
                case Op.TUPLE1:
                    Push(new PyTuple([Pop()]));
                    break;
                case Op.TUPLE2:
                {
                    var b2 = Pop();
                    var a2 = Pop();
                    Push(new PyTuple([a2, b2]));
                    break;
                }
                case Op.TUPLE3:
                {
                    var c3 = Pop();
                    var b3 = Pop();
                    var a3 = Pop();
                    Push(new PyTuple([a3, b3, c3]));
                    break;
                }
                case Op.NONE:
                    Push(PyNone.Instance);
                    break;
                case Op.NEWTRUE:
                    Push(true);
                    break;
                case Op.NEWFALSE:
                    Push(false);
                    break;
                case Op.BININT:
                    Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4)));
                    break;
                case Op.BININT1:
                    Push((long)ReadU8());
                    break;
                case Op.BININT2:
                    Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2)));
                    break;
                case Op.LONG1:
                {
                    var n = ReadU8();
                    var v = new BigInteger(ReadBytes(n), isUnsigned: false, isBigEndian: false);
                    Push(v >= long.MinValue && v <= long.MaxValue ? (object)(long)v : v);
                    break;
                }
                case Op.BINFLOAT:
                    Push(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8)));
                    break;
                case Op.SHORT_BINUNICODE:
                    Push(ReadString(ReadU8()));
                    break;
                case Op.BINUNICODE:
                    Push(ReadString(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))));
                    break;
                case Op.BINUNICODE8:
                    Push(ReadString(ReadU64()));
                    break;
                case Op.SHORT_BINBYTES:
                    Push(ReadBytes(ReadU8()));
                    break;
                case Op.BINBYTES:
                    Push(ReadBytes(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))));
                    break;
                case Op.BINPUT:
                    Memoize(ReadU8());
                    break;
                case Op.LONG_BINPUT:
                    Memoize(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)));
                    break;
                case Op.MEMOIZE:
                    Memoize(_memo.Count);
                    break;
                case Op.BINGET:
                    Push(MemoGet(ReadU8()));
                    break;
                case Op.LONG_BINGET:
                    Push(MemoGet(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))));
                    break;
                case Op.GLOBAL:
                {
                    var module = ReadLine();
                    var name = ReadLine();
                    Push(ResolveGlobal(module, name));
                    break;
                }
                case Op.STACK_GLOBAL:
                {
                    var name = Pop();
                    var module = Pop();
                    if (module is not string m || name is not string n)
                    {
                        throw Forbidden($"STACK_GLOBAL needs two str operands, got {PyTypes.Name(module)} and {PyTypes.Name(name)}");
                    }
                    Push(ResolveGlobal(m, n));
                    break;
                }
                case Op.REDUCE:
                {
                    var args = Pop();
                    var callable = Pop();
                    Push(Reduce(callable, args));
                    break;
                }
                case Op.BUILD:
                {
                    var state = Pop();
                    var inst = Peek();
                    Build(inst, state);
                    break;
                }
                case Op.BINPERSID:
                {
                    var pid = Pop();
                    if (_persistentLoad is null)
                    {
                        throw Forbidden("BINPERSID is not allowed in this pickle");
                    }
                    Push(_persistentLoad(pid, _opPosition));
                    break;
                }
                case Op.SETITEM:
                {
                    var value = Pop();
                    var key = Pop();
                    SetItem(Peek(), key, value);
                    break;
                }
                case Op.SETITEMS:
                {
                    var items = PopMark();
                    if (items.Count % 2 != 0)
                    {
                        throw Corrupt($"SETITEMS with an odd number ({items.Count}) of keys and values");
                    }
                    var target = Peek();
                    if (target is not PyDict)
                    {
                        throw Forbidden($"SETITEMS on a {PyTypes.Name(target)}, not a dict");
                    }
                    for (var i = 0; i < items.Count; i += 2)
                    {
                        SetItem(target, items[i], items[i + 1]);
                    }
                    break;
                }
                case Op.APPEND:
                {
                    var item = Pop();
                    var target = Peek();
                    if (target is not PyList list)
                    {
                        throw Forbidden($"APPEND on a {PyTypes.Name(target)}, not a list");
                    }
                    list.Items.Add(item);
                    break;
                }
                case Op.APPENDS:
                {
                    var items = PopMark();
                    var target = Peek();
                    if (target is not PyList list)
                    {
                        throw Forbidden($"APPENDS on a {PyTypes.Name(target)}, not a list");
                    }
                    list.Items.AddRange(items);
                    break;
                }
                default:
                    throw Forbidden($"opcode {Op.Describe(_op)} is not allowed");
            }
        }
    }

    private PyGlobal ResolveGlobal(string module, string name)
    {
        if (PickleAllowlist.TryResolve(module, name, out var global, out var unsupportedStorage))
        {
            return global;
        }
        if (unsupportedStorage)
        {
            throw Error(CheckpointErrorKind.UnknownDType, $"storage class '{module}.{name}' has an element type Graft does not support");
        }
        throw Error(CheckpointErrorKind.ForbiddenGlobal, $"global '{module}.{name}' is not allowed (it is outside the allowlist of state-dict globals)");
    }

    private object Reduce(object callable, object args)
    {
        if (callable is not PyGlobal g)
        {
            throw Forbidden($"REDUCE on a {PyTypes.Name(callable)}, which is not an allowlisted callable");
        }
        if (args is not PyTuple t)
        {
            throw Forbidden($"REDUCE of {g.FullName} with {PyTypes.Name(args)} arguments instead of a tuple");
        }
        var a = t.Items;
        switch (g.Kind)
        {
            case PyGlobalKind.OrderedDict:
                if (a.Length != 0)
                {
                    throw Forbidden($"REDUCE of {g.FullName} with {a.Length} arguments; only OrderedDict() is accepted");
                }
                return new PyDict(ordered: true);

            case PyGlobalKind.RebuildTensorV2:
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (a.Length is not (6 or 7))
                {
                    throw Forbidden($"REDUCE of {g.FullName} with {a.Length} arguments instead of 6");
                }
                if (a[0] is not StorageRef storage || a[1] is not long offset || a[2] is not PyTuple size || a[3] is not PyTuple stride
                    || a[4] is not bool || a[5] is not PyDict || (a.Length == 7 && a[6] is not PyDict))
                {
                    throw Forbidden($"REDUCE of {g.FullName} with arguments ({string.Join(", ", a.Select(PyTypes.Name))}); expected (storage, int, tuple, tuple, bool, OrderedDict)");
                }
                if (a.Length == 7 && ((PyDict)a[6]).Count != 0)
                {
                    throw Error(CheckpointErrorKind.Unsupported, $"{g.FullName} with tensor metadata (conjugate/negative views are not supported)");
                }
                return new TensorRef(storage, offset, Ints(size, g.FullName, "size"), Ints(stride, g.FullName, "stride"));

            case PyGlobalKind.RebuildParameter:
                // (data, requires_grad, backward_hooks)
                if (a.Length != 3 || a[0] is not TensorRef data || a[1] is not bool || a[2] is not PyDict)
                {
                    throw Forbidden($"REDUCE of {g.FullName} with arguments ({string.Join(", ", a.Select(PyTypes.Name))}); expected (tensor, bool, OrderedDict)");
                }
                return data;

            case PyGlobalKind.TorchSize:
                if (a.Length != 1 || a[0] is not PyTuple dims || dims.Items.Any(d => d is not long))
                {
                    throw Forbidden($"REDUCE of {g.FullName} with arguments ({string.Join(", ", a.Select(PyTypes.Name))}); expected one tuple of ints");
                }
                return dims;

            case PyGlobalKind.CodecsEncode:
                // Protocol 2 spells a bytes object as _codecs.encode(text, 'latin1').
                if (a.Length != 2 || a[0] is not string text || a[1] is not string encoding)
                {
                    throw Forbidden($"REDUCE of {g.FullName} with arguments ({string.Join(", ", a.Select(PyTypes.Name))}); expected (str, str)");
                }
                if (encoding is not ("latin1" or "latin-1"))
                {
                    throw Forbidden($"REDUCE of {g.FullName} with encoding '{encoding}'; only latin1 is accepted");
                }
                var bytes = new byte[text.Length];
                for (var i = 0; i < text.Length; i++)
                {
                    if (text[i] > 0xFF)
                    {
                        throw Corrupt($"{g.FullName}: character U+{(int)text[i]:X4} is not latin1");
                    }
                    bytes[i] = (byte)text[i];
                }
                return bytes;

            default:
                throw Forbidden($"REDUCE cannot call {g.FullName}");
        }
    }

    private long[] Ints(PyTuple t, string function, string what)
    {
        var result = new long[t.Items.Length];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = t.Items[i] switch
            {
                long l => l,
                BigInteger => throw Error(CheckpointErrorKind.InvalidShape, $"{function}: {what} entry {i} does not fit in 64 bits"),
                var other => throw Forbidden($"{function}: {what} entry {i} is a {PyTypes.Name(other)}, not an int"),
            };
        }
        return result;
    }

    private void Build(object inst, object state)
    {
        // torch only ever BUILDs an OrderedDict with its instance __dict__ (a state dict's _metadata).
        if (inst is not PyDict { IsOrderedDict: true } dict)
        {
            throw Forbidden($"BUILD on a {PyTypes.Name(inst)}; only an OrderedDict's attributes may be set");
        }
        if (state is not PyDict attributes || attributes.Entries.Any(e => e.Key is not string))
        {
            throw Forbidden($"BUILD of an OrderedDict with a {PyTypes.Name(state)} state; expected a dict of attribute names");
        }
        foreach (var (k, v) in attributes.Entries)
        {
            dict.Attributes[(string)k] = v;
        }
    }

    private void SetItem(object target, object key, object value)
    {
        if (target is not PyDict dict)
        {
            throw Forbidden($"{Op.Describe(_op)} on a {PyTypes.Name(target)}, not a dict");
        }
        if (!PyDict.IsAcceptableKey(key))
        {
            throw Forbidden($"{Op.Describe(_op)} with a {PyTypes.Name(key)} key; keys must be str, int, float, bool, None or tuples of them");
        }
        dict.Set(key, value);
    }

    private void Memoize(long index)
    {
        if (_stack.Count == 0)
        {
            throw Corrupt($"stack underflow at {Op.Describe(_op)}");
        }
        _memo[index] = _stack[^1];
    }

    private object MemoGet(long index) =>
        _memo.TryGetValue(index, out var v) ? v : throw Corrupt($"{Op.Describe(_op)} of memo entry {index}, which was never stored");

    private void Push(object value) => _stack.Add(value);

    private object Pop()
    {
        if (_stack.Count == 0)
        {
            throw Corrupt($"stack underflow at {Op.Describe(_op)}");
        }
        var v = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    private object Peek() => _stack.Count == 0 ? throw Corrupt($"stack underflow at {Op.Describe(_op)}") : _stack[^1];

    private List<object> PopMark()
    {
        if (_metastack.Count == 0)
        {
            throw Corrupt($"{Op.Describe(_op)} without a MARK");
        }
        var items = _stack;
        _stack = _metastack[^1];
        _metastack.RemoveAt(_metastack.Count - 1);
        return items;
    }

    private byte ReadU8()
    {
        var b = _in.ReadByte();
        return b < 0 ? throw Truncated() : (byte)b;
    }

    private ulong ReadU64() => BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8));

    private byte[] ReadBytes(ulong length)
    {
        if (length > (ulong)_in.Remaining)
        {
            throw Truncated(length);
        }
        var bytes = new byte[length];
        if (!_in.TryRead(bytes))
        {
            throw Truncated(length);
        }
        return bytes;
    }

    private string ReadString(ulong length)
    {
        var bytes = ReadBytes(length);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, _filePath, null, $"{Where()}: string is not valid UTF-8", e);
        }
    }

    private string ReadLine()
    {
        var bytes = new List<byte>();
        while (true)
        {
            var b = _in.ReadByte();
            if (b < 0)
            {
                throw Truncated();
            }
            if (b == '\n')
            {
                break;
            }
            if (bytes.Count >= MaxGlobalLineLength)
            {
                throw Corrupt($"GLOBAL name longer than {MaxGlobalLineLength} bytes");
            }
            bytes.Add((byte)b);
        }
        try
        {
            return StrictUtf8.GetString([.. bytes]);
        }
        catch (DecoderFallbackException e)
        {
            throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, _filePath, null, $"{Where()}: GLOBAL name is not valid UTF-8", e);
        }
    }

    private string Where() => $"{_label} at byte {_opPosition}";

    private CheckpointFormatException Truncated(ulong? wanted = null) =>
        Corrupt(wanted is { } w ? $"{Op.Describe(_op)} needs {w} bytes but only {_in.Remaining} are left" : $"{Op.Describe(_op)} runs past the end of the pickle");

    private CheckpointFormatException Corrupt(string detail) => Error(CheckpointErrorKind.Corrupt, detail);

    private CheckpointFormatException Forbidden(string detail) => Error(CheckpointErrorKind.ForbiddenOpcode, detail);

    private CheckpointFormatException Error(CheckpointErrorKind kind, string detail) => new(kind, _filePath, null, $"{Where()}: {detail}");
}
