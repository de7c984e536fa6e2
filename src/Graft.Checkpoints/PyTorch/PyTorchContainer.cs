namespace Graft.Checkpoints.PyTorch;

/// <summary>Which of PyTorch's two file layouts a checkpoint uses.</summary>
public enum PyTorchContainer
{
    /// <summary>The uncompressed zip <c>torch.save</c> writes since 1.6.</summary>
    Zip,
    /// <summary>The older concatenation of pickles followed by raw storages (<c>_use_new_zipfile_serialization=False</c>).</summary>
    Legacy,
}
