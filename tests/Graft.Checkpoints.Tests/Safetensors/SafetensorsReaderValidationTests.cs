using System.Text;
using Graft.Checkpoints.Safetensors;

namespace Graft.Checkpoints.Tests.Safetensors;

/// <summary>One named negative test per <see cref="CheckpointErrorKind"/> the safetensors reader raises, each on bytes built by hand.</summary>
public sealed class SafetensorsReaderValidationTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private CheckpointFormatException Refuse(byte[] bytes, CheckpointErrorKind kind, string? tensor = null) =>
        Refusal.Expect(SafetensorsReader.Open, _dir.Write("hostile.safetensors", bytes), kind, tensor);

    private static string H(params string[] entries) => "{" + string.Join(",", entries) + "}";

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    public void Open_FileShorterThanPrefix_ThrowsTooShort(int length) =>
        Assert.StartsWith($"file is {length} bytes", Refuse(new byte[length], CheckpointErrorKind.TooShort).Detail);

    [Theory]
    [InlineData(100_000_001UL)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 63)]
    public void Open_HeaderLengthOverCap_ThrowsHeaderTooLarge(ulong declared) =>
        Refuse(StBytes.Declared(declared, "{}      "u8.ToArray()), CheckpointErrorKind.HeaderTooLarge);

    [Theory]
    [InlineData(9UL)]
    [InlineData(1000UL)]
    [InlineData(100_000_000UL)]
    public void Open_HeaderLengthBeyondFile_ThrowsHeaderTooLarge(ulong declared) =>
        Refuse(StBytes.Declared(declared, "{}      "u8.ToArray()), CheckpointErrorKind.HeaderTooLarge);

    [Theory]
    [InlineData(new byte[] { 0xFF })]
    [InlineData(new byte[] { 0xC0, 0xAF })] // overlong '/'
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })] // UTF-16 surrogate encoded in UTF-8
    [InlineData(new byte[] { 0xE2, 0x82 })] // truncated sequence
    public void Open_HeaderNotUtf8_ThrowsHeaderNotUtf8(byte[] bad)
    {
        var header = Encoding.UTF8.GetBytes("{\"__metadata__\":{\"k\":\"").Concat(bad).Concat(Encoding.UTF8.GetBytes("\"}}")).ToArray();
        Refuse(StBytes.Image(header), CheckpointErrorKind.HeaderNotUtf8);
    }

    public static TheoryData<string> NotJson => new()
    {
        "not json",
        "  ",
        "{\"a\":{\"dtype\":\"F32\"",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}",
        "{} x",
        "{}{}",
        "{/* comment */}",
        "{\"__metadata__\":{\"k\":\"v\",},}",
        "{'a':1}",
        "\uFEFF{}",
        "{\"__metadata__\":" + new string('[', 100) + new string(']', 100) + "}",
        "{\"__metadata__\":{\"k\":\"v\u0001\"}}",
    };

    [Theory]
    [MemberData(nameof(NotJson))]
    public void Open_HeaderNotJsonTruncatedOrTooDeep_ThrowsHeaderNotJson(string header) =>
        Refuse(StBytes.Image(header), CheckpointErrorKind.HeaderNotJson);

    public static TheoryData<string, string?> BadStructure => new()
    {
        { "[]", null },
        { "\"x\"", null },
        { "null", null },
        { "{\"a\":5}", "a" },
        { "{\"a\":[0,8]}", "a" },
        { "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "a" },
        { "{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", "a" },
        { "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "a" },
    };

    [Theory]
    [MemberData(nameof(BadStructure))]
    public void Open_HeaderWrongStructure_ThrowsInvalidHeader(string header, string? tensor) =>
        Refuse(StBytes.Image(header, new byte[8]), CheckpointErrorKind.InvalidHeader, tensor);

    [Theory]
    [InlineData("{\"__metadata__\":{\"k\":1}}")]
    [InlineData("{\"__metadata__\":{\"k\":null}}")]
    [InlineData("{\"__metadata__\":{\"k\":{\"nested\":\"v\"}}}")]
    [InlineData("{\"__metadata__\":{\"k\":[\"v\"]}}")]
    [InlineData("{\"__metadata__\":[]}")]
    [InlineData("{\"__metadata__\":\"v\"}")]
    [InlineData("{\"__metadata__\":null}")]
    [InlineData("{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}")]
    public void Open_MetadataNotStringToString_ThrowsInvalidMetadata(string header) =>
        Refuse(StBytes.Image(header), CheckpointErrorKind.InvalidMetadata);

    [Fact]
    public void Open_DuplicateTensorName_ThrowsDuplicateName() =>
        Refuse(StBytes.Image(H(StBytes.F32("a", "[2]", 0, 8), StBytes.F32("a", "[2]", 8, 16)), new byte[16]),
            CheckpointErrorKind.DuplicateName, "a");

    [Fact]
    public void Open_DuplicateTensorNameSpelledWithEscape_ThrowsDuplicateName() =>
        Refuse(StBytes.Image(H(StBytes.F32("ab", "[2]", 0, 8), StBytes.F32("\\u0061b", "[2]", 8, 16)), new byte[16]),
            CheckpointErrorKind.DuplicateName, "ab");

    [Fact]
    public void Open_DuplicateMetadataKey_ThrowsDuplicateName() =>
        Refuse(StBytes.Image("{\"__metadata__\":{},\"__metadata__\":{}}"), CheckpointErrorKind.DuplicateName);

    [Theory]
    [InlineData("F128")]
    [InlineData("f32")]
    [InlineData("")]
    [InlineData("FLOAT")]
    public void Open_UnknownDType_ThrowsUnknownDType(string dtype)
    {
        var ex = Refuse(StBytes.Image($"{{\"w\":{{\"dtype\":\"{dtype}\",\"shape\":[2],\"data_offsets\":[0,8]}}}}", new byte[8]),
            CheckpointErrorKind.UnknownDType, "w");
        Assert.Contains($"'{dtype}'", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[-1]")]
    [InlineData("[2,-3]")]
    [InlineData("[1.5]")]
    [InlineData("[2.0]")]
    [InlineData("[1e2]")]
    [InlineData("[9223372036854775808]")]
    [InlineData("[1000000000000000000000000000000]")]
    [InlineData("[\"2\"]")]
    [InlineData("[null]")]
    [InlineData("[true]")]
    [InlineData("[[2]]")]
    [InlineData("2")]
    [InlineData("\"2\"")]
    [InlineData("{}")]
    public void Open_DimensionNegativeFractionalOrHuge_ThrowsInvalidShape(string shape) =>
        Refuse(StBytes.Image(H(StBytes.F32("w", shape, 0, 8)), new byte[8]), CheckpointErrorKind.InvalidShape, "w");

    [Fact]
    public void Open_RankBeyondCap_ThrowsInvalidShape()
    {
        var shape = "[" + string.Join(",", Enumerable.Repeat("1", SafetensorsReader.MaxRank + 1)) + "]";
        Refuse(StBytes.Image(H(StBytes.F32("w", shape, 0, 4)), new byte[4]), CheckpointErrorKind.InvalidShape, "w");
    }

    [Theory]
    [InlineData("[4611686018427387904,4]")] // element count 2^64
    [InlineData("[2305843009213693952]")] // 2^61 elements × 4 bytes = 2^63
    [InlineData("[9223372036854775807,9223372036854775807,0]")] // overflows before the zero, as the reference does
    public void Open_ShapeTimesElementSizeOverflows_ThrowsSizeOverflow(string shape) =>
        Refuse(StBytes.Image(H(StBytes.F32("w", shape, 0, 8)), new byte[8]), CheckpointErrorKind.SizeOverflow, "w");

    [Theory]
    [InlineData("[0]")]
    [InlineData("[]")]
    [InlineData("[0,8,16]")]
    [InlineData("[8,0]")]
    [InlineData("[-1,7]")]
    [InlineData("[0.5,8]")]
    [InlineData("[0,8.0]")]
    [InlineData("[0,9223372036854775808]")]
    [InlineData("[null,8]")]
    [InlineData("[\"0\",\"8\"]")]
    [InlineData("\"0,8\"")]
    [InlineData("{\"begin\":0,\"end\":8}")]
    public void Open_OffsetsNotOrderedPairOfNonNegativeIntegers_ThrowsInvalidOffsets(string offsets) =>
        Refuse(StBytes.Image($"{{\"w\":{{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{offsets}}}}}", new byte[8]),
            CheckpointErrorKind.InvalidOffsets, "w");

    [Theory]
    [InlineData("[2]", 0, 4)]
    [InlineData("[2]", 0, 12)]
    [InlineData("[]", 0, 0)]
    [InlineData("[0]", 0, 4)]
    public void Open_RangeLengthDiffersFromShape_ThrowsLengthMismatch(string shape, long begin, long end) =>
        Refuse(StBytes.Image(H(StBytes.F32("w", shape, begin, end)), new byte[end]), CheckpointErrorKind.LengthMismatch, "w");

    [Fact]
    public void Open_RangesOverlap_ThrowsOverlappingData()
    {
        var ex = Refuse(StBytes.Image(H(StBytes.F32("a", "[2]", 0, 8), StBytes.F32("b", "[2]", 4, 12)), new byte[12]),
            CheckpointErrorKind.OverlappingData, "b");
        Assert.Contains("'a'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_TwoTensorsShareOneRange_ThrowsOverlappingData() =>
        Refuse(StBytes.Image(H(StBytes.F32("a", "[2]", 0, 8), StBytes.F32("b", "[2]", 0, 8)), new byte[8]),
            CheckpointErrorKind.OverlappingData);

    [Fact]
    public void Open_EmptyTensorInsideAnotherRange_ThrowsOverlappingData() =>
        Refuse(StBytes.Image(H(StBytes.F32("a", "[2]", 0, 8), StBytes.F32("e", "[0]", 4, 4)), new byte[8]),
            CheckpointErrorKind.OverlappingData, "e");

    [Fact]
    public void Open_HoleBetweenRanges_ThrowsGapInData() =>
        Refuse(StBytes.Image(H(StBytes.F32("a", "[2]", 0, 8), StBytes.F32("b", "[2]", 12, 20)), new byte[20]),
            CheckpointErrorKind.GapInData, "b");

    [Fact]
    public void Open_FirstRangeNotAtStart_ThrowsGapInData() =>
        Refuse(StBytes.Image(H(StBytes.F32("a", "[2]", 4, 12)), new byte[12]), CheckpointErrorKind.GapInData, "a");

    [Theory]
    [InlineData(9)]
    [InlineData(16)]
    public void Open_TrailingBytesAfterLastTensor_ThrowsGapInData(int dataLength) =>
        Refuse(StBytes.Image(H(StBytes.F32("a", "[2]", 0, 8)), new byte[dataLength]), CheckpointErrorKind.GapInData);

    [Fact]
    public void Open_NoTensorsButData_ThrowsGapInData() =>
        Refuse(StBytes.Image("{}", new byte[3]), CheckpointErrorKind.GapInData);

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(7)]
    public void Open_RangePastEndOfFile_ThrowsOutOfBounds(int dataLength) =>
        Refuse(StBytes.Image(H(StBytes.F32("a", "[2]", 0, 8)), new byte[dataLength]), CheckpointErrorKind.OutOfBounds, "a");

    [Fact]
    public void Open_HugeDeclaredShapeInTinyFile_RefusedWithoutAllocating()
    {
        // 10^18 float32 elements claimed by a 100-byte file: the reader must refuse from the header alone.
        var bytes = StBytes.Image(H(StBytes.F32("w", "[1000000000,1000000000]", 0, 4_000_000_000_000_000_000)), new byte[8]);
        var path = _dir.Write("huge.safetensors", bytes);
        Assert.Throws<CheckpointFormatException>(() => SafetensorsReader.Open(path)); // warm up code paths
        var before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<CheckpointFormatException>(() => SafetensorsReader.Open(path));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(CheckpointErrorKind.OutOfBounds, ex.Kind);
        Assert.Equal("w", ex.TensorName);
        Assert.True(allocated < 1 << 20, $"allocated {allocated} bytes refusing a tiny file");
    }

    [Fact]
    public void Open_HugeDeclaredShapeWithSmallRange_ThrowsLengthMismatch() =>
        Refuse(StBytes.Image(H(StBytes.F32("w", "[1000000000,1000000000]", 0, 8)), new byte[8]), CheckpointErrorKind.LengthMismatch, "w");

    [Fact]
    public void Open_HeaderLengthBeyondFileWithValidJsonStart_ThrowsHeaderTooLarge()
    {
        // A real header whose length prefix claims one byte more than the file holds.
        var good = StBytes.Image(H(StBytes.F32("a", "[2]", 0, 8)), new byte[8]);
        var header = good.AsSpan(8, good.Length - 16).ToArray();
        var bad = StBytes.Declared((ulong)(header.Length + 9), [.. header, .. new byte[8]]);
        Refuse(bad, CheckpointErrorKind.HeaderTooLarge);
    }
}
