using System.Text.Json;
using System.Text.Json.Serialization;
using Graft.Checkpoints;
using Graft.Transforms;

namespace Graft.Transfer;

/// <summary>What happens to one target tensor.</summary>
public enum TargetStatus
{
    /// <summary>Same shape and dtype: bytes copied.</summary>
    Copied,
    /// <summary>Same shape, other dtype: values cast.</summary>
    Cast,
    /// <summary>Shapes differ: transformed from the source.</summary>
    Adapted,
    /// <summary>Freshly initialised (on request or because nothing could be carried over sensibly); <c>reinitialised</c> in JSON and tables.</summary>
    [JsonStringEnumMemberName("reinitialised")]
    Reinitialized,
    /// <summary>Not transferred: the template's value is kept.</summary>
    Kept,
}
