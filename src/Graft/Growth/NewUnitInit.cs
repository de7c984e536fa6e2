namespace Graft.Growth;

/// <summary>Where the incoming weights of new channels come from under <see cref="WidenMethod.ZeroOutgoing"/>.</summary>
public enum NewUnitInit
{
    /// <summary>The target module's own initialisation (BatchNorm vectors always come from it).</summary>
    Template,
    /// <summary>Kaiming-normal (fan_out, ReLU), deterministic for <see cref="WidenOptions.Seed"/>; new biases zero.</summary>
    KaimingNormal,
}
