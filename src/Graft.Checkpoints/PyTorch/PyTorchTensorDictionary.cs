namespace Graft.Checkpoints.PyTorch;

/// <summary>
/// A dictionary of tensors found inside a PyTorch checkpoint: the top-level state dict, or one nested in a training
/// checkpoint (<c>state_dict</c>, <c>model</c>, <c>ema</c> …). Listed so a caller can see what else is there and pick
/// another than the default.
/// </summary>
/// <param name="KeyPath">
/// Where the dictionary is: dictionary keys and list indices joined with <c>/</c> (<c>state_dict</c>,
/// <c>optimizer/state/0</c>); the empty string for the top level. Pass it to <see cref="PyTorchReader.Open"/> to read it.
/// </param>
/// <param name="TensorCount">How many tensors it holds.</param>
/// <param name="ByteLength">Total bytes of its tensors (views of one storage are counted once per view).</param>
public sealed record PyTorchTensorDictionary(string KeyPath, int TensorCount, long ByteLength);
