namespace Graft.Checkpoints.Tests;

public sealed class TensorIndexTests
{
    private static readonly TensorInfo A = new("a", DType.F32, new Shape(2, 3), 24);
    private static readonly TensorInfo B = new("b", DType.I64, new Shape(4), 32);

    [Fact]
    public void Index_KeepsFileOrder_FindsByNameAndByValue()
    {
        var index = new TensorIndex<(TensorInfo Info, long Offset)>("x.ckpt", [(B, 100), (A, 7)], static e => e.Info);
        Assert.Equal([B, A], index.Tensors);
        Assert.True(index.TryGetTensor("a", out var a));
        Assert.Same(A, a);
        Assert.False(index.TryGetTensor("c", out _));
        // An equal description (another instance) is the same tensor; its entry comes back.
        Assert.Equal(7, index.Find(new TensorInfo("a", DType.F32, new Shape(2, 3), 24)).Offset);
    }

    [Fact]
    public void Find_SameNameOtherShapeOrUnknown_RefusedNamingTheFile()
    {
        var index = new TensorIndex<TensorInfo>("x.onnx", [A], static e => e, "initializer");
        var ex = Assert.Throws<ArgumentException>(() => index.Find(new TensorInfo("a", DType.F32, new Shape(3, 2), 24)));
        Assert.Contains("'a' (3, 2) F32 is not an initializer of x.onnx", ex.Message);
        Assert.Throws<ArgumentException>(() => index.Find(B));
    }

    [Fact]
    public void FindForRead_DestinationOfAnotherLength_RefusedNamingBothLengths()
    {
        var index = new TensorIndex<TensorInfo>("x.dat", [A], static e => e);
        Assert.Same(A, index.FindForRead(A, new byte[24]));
        var ex = Assert.Throws<ArgumentException>(() => index.FindForRead(A, new byte[23]));
        Assert.Equal("destination", ex.ParamName);
        Assert.Contains("'a' has 24 bytes; the destination holds 23", ex.Message);
    }
}
