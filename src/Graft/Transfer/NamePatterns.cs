using System.Text.RegularExpressions;

namespace Graft.Transfer;

/// <summary>
/// The one place where user patterns meet tensor names. Names come from checkpoints (a hostile file can hold a
/// 10,000-character name) and patterns from users, so neither may cost more than linear time: globs are matched
/// directly, and regexes run on .NET's non-backtracking engine whenever the pattern allows it.
/// </summary>
internal static class NamePatterns
{
    /// <summary>How long one regex match may take on the backtracking engine (patterns with backreferences or lookarounds).</summary>
    internal static readonly TimeSpan RegexTimeout = TimeSpan.FromSeconds(1);

    /// <summary>
    /// True when <paramref name="glob"/> (<c>*</c> any characters, <c>?</c> one, everything else literal) matches the
    /// whole of <paramref name="name"/>. Time O(name × pattern) at worst, with no allocation: after a mismatch only the
    /// most recent <c>*</c> is retried, which is enough for globs (unlike a regex translation, whose backtracking on
    /// <c>*x*x*y</c> grows with the square of the name and more).
    /// </summary>
    public static bool GlobMatches(string glob, string name)
    {
        int p = 0, n = 0, star = -1, resume = 0;
        while (n < name.Length)
        {
            if (p < glob.Length && glob[p] == '*')
            {
                star = p++;
                resume = n;
            }
            else if (p < glob.Length && (glob[p] == '?' || glob[p] == name[n]))
            {
                p++;
                n++;
            }
            else if (star >= 0)
            {
                p = star + 1;
                n = ++resume;
            }
            else
            {
                return false;
            }
        }
        while (p < glob.Length && glob[p] == '*')
        {
            p++;
        }
        return p == glob.Length;
    }

    /// <summary>
    /// Compiles a user regex: on the non-backtracking engine (linear in the name, so <c>^(x+x+)+y$</c> is harmless) unless
    /// the pattern needs a construct only the backtracking engine has (backreferences, lookarounds, atomic groups); then
    /// on that engine with <see cref="RegexTimeout"/>, which <see cref="TimedOut"/> turns into a one-line refusal.
    /// </summary>
    /// <param name="pattern">The regex.</param>
    /// <param name="what">What the pattern is, for the message (<c>Rename rule (--rename)</c>).</param>
    /// <exception cref="TransferPlanException">The pattern is not a valid regex.</exception>
    public static Regex CompileRegex(string pattern, string what)
    {
        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.NonBacktracking, RegexTimeout);
        }
        catch (NotSupportedException)
        {
            // Falls through to the backtracking engine below.
        }
        catch (ArgumentException e)
        {
            throw new TransferPlanException($"{what} '{pattern}' is not a valid regular expression: {e.Message}");
        }
        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant, RegexTimeout);
        }
        catch (ArgumentException e)
        {
            throw new TransferPlanException($"{what} '{pattern}' is not a valid regular expression: {e.Message}");
        }
    }

    /// <summary>The refusal for a backtracking regex that ran out of time on a tensor name.</summary>
    public static TransferPlanException TimedOut(string what, string pattern, string name) =>
        new($"{what} '{pattern}' took longer than {RegexTimeout.TotalSeconds:0} s on tensor '{(name.Length > 80 ? name[..80] + "…" : name)}' ({name.Length} characters); simplify the pattern (nested repetition such as (x+)+ backtracks exponentially).");
}
