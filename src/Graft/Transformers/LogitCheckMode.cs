namespace Graft.Transformers;

/// <summary>When a transfer planned by role (<see cref="TransformerPlanner"/>) runs <see cref="LogitCheck"/> on what it wrote.</summary>
public enum LogitCheckMode
{
    /// <summary>
    /// When the plan claims the function is kept (no function problems) and neither model has more than
    /// <see cref="LogitCheck.MaxParameters"/> parameters: the claim is then measured, and a transfer that breaks it fails.
    /// </summary>
    Auto,
    /// <summary>Always, whatever the size; a plan that does not claim the function is kept is measured and reported, never failed.</summary>
    Always,
    /// <summary>Never: the report says it was not measured.</summary>
    Never,
}
