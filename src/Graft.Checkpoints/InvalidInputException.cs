namespace Graft.Checkpoints;

/// <summary>
/// Input that a person chose is invalid: text to parse (a rule, a policy word, a preset, a size, a format name), an
/// output path that would overwrite an input or is no regular file, an output format that cannot hold a tensor, an
/// environment variable. The message names the offending value and says what would be accepted.
/// </summary>
/// <remarks>
/// It is an <see cref="ArgumentException"/>, so to a library caller it is a caller mistake like any other. The type
/// exists for front ends such as the <c>graft</c> command: the person at the keyboard can fix this error, whereas a
/// plain <see cref="ArgumentException"/> raised deep inside Graft is a defect in Graft. Graft throws it only where the
/// value reached it unchanged from its caller, so that a front end can pass it on as the user's to fix.
/// It lives in the lowest layer (beside <see cref="CheckpointFormatException"/>) because paths and format names are
/// checked there.
/// </remarks>
public sealed class InvalidInputException : ArgumentException
{
    /// <summary>An invalid input described by <paramref name="message"/>, which names the value.</summary>
    public InvalidInputException(string message) : base(message)
    {
    }

    /// <summary>An invalid input described by <paramref name="message"/>, found while reading it (<paramref name="inner"/>).</summary>
    public InvalidInputException(string message, Exception? inner) : base(message, inner)
    {
    }

    /// <summary>The same error with <paramref name="prefix"/> (for example the option that carried the value) before its message.</summary>
    public InvalidInputException WithPrefix(string prefix) => new($"{prefix}: {Message}", this);
}
