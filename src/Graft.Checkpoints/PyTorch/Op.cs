using System.Globalization;

namespace Graft.Checkpoints.PyTorch;

/// <summary>Pickle opcode bytes (from CPython's <c>pickletools</c>) and their names for error messages.</summary>
internal static class Op
{
    // Accepted: what torch.save emits for state dicts with pickle protocols 2 to 5.
    public const byte MARK = (byte)'(';
    public const byte STOP = (byte)'.';
    public const byte BININT = (byte)'J';
    public const byte BININT1 = (byte)'K';
    public const byte BININT2 = (byte)'M';
    public const byte NONE = (byte)'N';
    public const byte BINUNICODE = (byte)'X';
    public const byte APPEND = (byte)'a';
    public const byte BUILD = (byte)'b';
    public const byte GLOBAL = (byte)'c';
    public const byte APPENDS = (byte)'e';
    public const byte BINGET = (byte)'h';
    public const byte LONG_BINGET = (byte)'j';
    public const byte EMPTY_LIST = (byte)']';
    public const byte BINPUT = (byte)'q';
    public const byte LONG_BINPUT = (byte)'r';
    public const byte SETITEM = (byte)'s';
    public const byte TUPLE = (byte)'t';
    public const byte SETITEMS = (byte)'u';
    public const byte EMPTY_DICT = (byte)'}';
    public const byte EMPTY_TUPLE = (byte)')';
    public const byte BINFLOAT = (byte)'G';
    public const byte REDUCE = (byte)'R';
    public const byte BINPERSID = (byte)'Q';
    public const byte PROTO = 0x80;
    public const byte TUPLE1 = 0x85;
    public const byte TUPLE2 = 0x86;
    public const byte TUPLE3 = 0x87;
    public const byte NEWTRUE = 0x88;
    public const byte NEWFALSE = 0x89;
    public const byte LONG1 = 0x8a;
    public const byte BINBYTES = (byte)'B';
    public const byte SHORT_BINBYTES = (byte)'C';
    public const byte SHORT_BINUNICODE = 0x8c;
    public const byte BINUNICODE8 = 0x8d;
    public const byte STACK_GLOBAL = 0x93;
    public const byte MEMOIZE = 0x94;
    public const byte FRAME = 0x95;

    private static readonly Dictionary<byte, string> Names = new()
    {
        [(byte)'('] = "MARK", [(byte)'.'] = "STOP", [(byte)'0'] = "POP", [(byte)'1'] = "POP_MARK", [(byte)'2'] = "DUP",
        [(byte)'F'] = "FLOAT", [(byte)'I'] = "INT", [(byte)'J'] = "BININT", [(byte)'K'] = "BININT1", [(byte)'L'] = "LONG",
        [(byte)'M'] = "BININT2", [(byte)'N'] = "NONE", [(byte)'P'] = "PERSID", [(byte)'Q'] = "BINPERSID", [(byte)'R'] = "REDUCE",
        [(byte)'S'] = "STRING", [(byte)'T'] = "BINSTRING", [(byte)'U'] = "SHORT_BINSTRING", [(byte)'V'] = "UNICODE",
        [(byte)'X'] = "BINUNICODE", [(byte)'a'] = "APPEND", [(byte)'b'] = "BUILD", [(byte)'c'] = "GLOBAL", [(byte)'d'] = "DICT",
        [(byte)'}'] = "EMPTY_DICT", [(byte)'e'] = "APPENDS", [(byte)'g'] = "GET", [(byte)'h'] = "BINGET", [(byte)'i'] = "INST",
        [(byte)'j'] = "LONG_BINGET", [(byte)'l'] = "LIST", [(byte)']'] = "EMPTY_LIST", [(byte)'o'] = "OBJ", [(byte)'p'] = "PUT",
        [(byte)'q'] = "BINPUT", [(byte)'r'] = "LONG_BINPUT", [(byte)'s'] = "SETITEM", [(byte)'t'] = "TUPLE", [(byte)')'] = "EMPTY_TUPLE",
        [(byte)'u'] = "SETITEMS", [(byte)'G'] = "BINFLOAT", [0x80] = "PROTO", [0x81] = "NEWOBJ", [0x82] = "EXT1", [0x83] = "EXT2",
        [0x84] = "EXT4", [0x85] = "TUPLE1", [0x86] = "TUPLE2", [0x87] = "TUPLE3", [0x88] = "NEWTRUE", [0x89] = "NEWFALSE",
        [0x8a] = "LONG1", [0x8b] = "LONG4", [(byte)'B'] = "BINBYTES", [(byte)'C'] = "SHORT_BINBYTES", [0x8c] = "SHORT_BINUNICODE",
        [0x8d] = "BINUNICODE8", [0x8e] = "BINBYTES8", [0x8f] = "EMPTY_SET", [0x90] = "ADDITEMS", [0x91] = "FROZENSET",
        [0x92] = "NEWOBJ_EX", [0x93] = "STACK_GLOBAL", [0x94] = "MEMOIZE", [0x95] = "FRAME", [0x96] = "BYTEARRAY8",
        [0x97] = "NEXT_BUFFER", [0x98] = "READONLY_BUFFER",
    };

    /// <summary>The opcode's pickletools name (<c>INST</c>), or its byte value for bytes that are no opcode.</summary>
    public static string Describe(byte op) =>
        Names.TryGetValue(op, out var n) ? n : "0x" + op.ToString("x2", CultureInfo.InvariantCulture) + " (not a pickle opcode)";
}
