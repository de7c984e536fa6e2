using static TorchSharp.torch;

namespace Graft;

/// <summary>
/// Explicit conversions between Keras kernel layouts and PyTorch/TorchSharp layouts. Graft never infers a Keras
/// layout from a shape (a (3, 3, 64, 64) tensor is valid in both); the caller says which one it has.
/// </summary>
public static class KerasLayout
{
    /// <summary>Keras ConvNd kernel (k1..kN, in/groups, out) → PyTorch (out, in/groups, k1..kN).</summary>
    public static Tensor ConvToTorch(Tensor kernel) => KernelFirstToLast(kernel, "conv");

    /// <summary>PyTorch ConvNd weight (out, in/groups, k1..kN) → Keras (k1..kN, in/groups, out).</summary>
    public static Tensor ConvFromTorch(Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        int n = (int)weight.dim() - 2;
        if (n < 1)
        {
            throw new ArgumentException($"A conv weight has rank ≥ 3; got shape ({string.Join(", ", weight.shape)}).", nameof(weight));
        }
        var perm = new long[n + 2];
        for (int i = 0; i < n; i++)
        {
            perm[i] = 2 + i;
        }
        perm[n] = 1;
        perm[n + 1] = 0;
        return weight.permute(perm).contiguous();
    }

    /// <summary>
    /// Keras ConvNdTranspose kernel (k1..kN, out, in) → PyTorch ConvTransposeNd weight (in, out, k1..kN).
    /// The permutation is the same as for a convolution; only the meaning of the two channel axes differs.
    /// </summary>
    public static Tensor ConvTransposeToTorch(Tensor kernel) => KernelFirstToLast(kernel, "transposed-conv");

    /// <summary>Keras Dense kernel (in, out) → PyTorch Linear weight (out, in).</summary>
    public static Tensor DenseToTorch(Tensor kernel)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        if (kernel.dim() != 2)
        {
            throw new ArgumentException($"A Dense kernel has rank 2; got shape ({string.Join(", ", kernel.shape)}).", nameof(kernel));
        }
        return kernel.t().contiguous();
    }

    // (k1..kN, a, b) → (b, a, k1..kN)
    private static Tensor KernelFirstToLast(Tensor kernel, string what)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        int n = (int)kernel.dim() - 2;
        if (n < 1)
        {
            throw new ArgumentException($"A Keras {what} kernel has rank ≥ 3; got shape ({string.Join(", ", kernel.shape)}).", nameof(kernel));
        }
        var perm = new long[n + 2];
        perm[0] = n + 1;
        perm[1] = n;
        for (int i = 0; i < n; i++)
        {
            perm[2 + i] = i;
        }
        return kernel.permute(perm).contiguous();
    }
}
