using System.Text.RegularExpressions;
using Graft.Checkpoints;

using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>Where new output channels (target larger than source) come from.</summary>
public enum NewChannelRule
{
    /// <summary>The target's own initialisation, read from the template.</summary>
    Template,
    /// <summary>Zeros (BatchNorm running variance 1).</summary>
    Zeros,
    /// <summary>Kaiming-normal (fan_out, ReLU); biases zero. Also read from <c>kaiming</c>.</summary>
    [PolicyWord("kaiming")]
    KaimingNormal,
    /// <summary>Cyclic copies of the source channels.</summary>
    Copies,
}
