namespace Graft.Transfer;

/// <summary>
/// The plan-wide notes the stages collect (structural guesses, largest-norm decisions that fell back to first-n), in
/// the order and with the grouping a reader needs.
/// </summary>
internal sealed class PlanNotes
{
    /// <summary>Structural guesses noted one by one; more are counted in one note.</summary>
    private const int MaxGuessNotes = 50;

    private readonly List<string> _notes = [];

    /// <summary>Largest-norm decisions that fell back to first-n: noted one by one when alone, else in one line.</summary>
    private readonly List<(string Layer, string Rule, string Why)> _firstNFallbacks = [];

    /// <summary>One note per structural guess, up to a screenful; past it one line counts the rest (every target's own entry still says how it was matched).</summary>
    public void AddGuesses(IEnumerable<NameMatch> matches)
    {
        int guesses = 0;
        foreach (var m in matches.Where(m => m.Kind == MatchKind.Structural))
        {
            if (++guesses <= MaxGuessNotes)
            {
                _notes.Add($"structural guess: {m.Target} ← {m.Source} (refuse it with --rule '{m.Target}:structural=false'; in the library, a TensorRule with Structural = false)");
            }
        }
        if (guesses > MaxGuessNotes)
        {
            _notes.Add($"structural guesses: {guesses - MaxGuessNotes} more (each target's match says so)");
        }
    }

    /// <summary>A largest-norm decision of <paramref name="layer"/> that fell back to first-n, and why.</summary>
    public void AddFirstNFallback(string layer, string rule, string why) => _firstNFallbacks.Add((layer, rule, why));

    /// <summary>The plan's notes: the guesses, then the first-n fallbacks (one line with a count when several).</summary>
    public List<string> All()
    {
        var notes = new List<string>(_notes);
        if (_firstNFallbacks.Count == 1)
        {
            var (layer, rule, why) = _firstNFallbacks[0];
            notes.Add($"{layer}: {rule} asked, first-n used: {why}");
        }
        else if (_firstNFallbacks.Count > 1)
        {
            var names = string.Join(", ", _firstNFallbacks.Take(3).Select(f => f.Layer)) + (_firstNFallbacks.Count > 3 ? ", …" : "");
            notes.Add($"{_firstNFallbacks[0].Rule} asked, first-n used in {_firstNFallbacks.Count} layers ({names}): nothing says which layers read their channels " +
                "(each layer's reason names the candidates); declare them with --group 'PRODUCER->CONSUMER' (the library can also trace a live model), or use --out-shrink first");
        }
        return notes;
    }
}
