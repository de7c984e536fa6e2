namespace Graft.Transforms;

/// <summary>
/// A step seen as pure data movement, for the executor's streaming path (<see cref="GatherChain"/>): along
/// <see cref="Axis"/>, output index j reads input index <c>Index[j]</c> (null: the axis is unchanged); then every value
/// is replaced by zero (<see cref="Zero"/>) or multiplied by <see cref="Scale"/> (skipped when it is 1), as the step's
/// managed twin does. Every output value is then a function of one input value, the same for all of them.
/// </summary>
/// <param name="Axis">The axis moved.</param>
/// <param name="Index">For each output index along the axis, the input index it reads; null for the identity.</param>
/// <param name="Scale">The factor every value is multiplied by, rounded to the work dtype first (as the twin does).</param>
/// <param name="Zero">True when every value becomes zero (the factor then applies to zero).</param>
internal sealed record AxisGather(int Axis, long[]? Index, double Scale = 1.0, bool Zero = false);
