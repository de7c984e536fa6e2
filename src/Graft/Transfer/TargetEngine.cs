using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>What produces a target's values when the transfer runs.</summary>
public enum TargetEngine
{
    /// <summary>Nothing computes: the bytes stream from the source (a copy) or the template (a kept tensor).</summary>
    Bytes,
    /// <summary>Managed twins of every step and the cast (<see cref="WeightTransform.HasTwin"/>): libtorch is not loaded.</summary>
    Managed,
    /// <summary>TorchSharp (libtorch), the definition of every transform.</summary>
    LibTorch,
}
