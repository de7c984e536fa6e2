using System.Globalization;
using System.Text;
using Graft.Checkpoints;

namespace Graft.Transformers;

/// <summary>
/// Which source block each target decoder block comes from, by rule instead of the default placement (identity blocks
/// spread evenly after the existing blocks): SOLAR's depth up-scaling (Kim et al. 2023) is <c>0-23,8-31</c> (target
/// blocks are source blocks 0…23 then 8…31), LLaMA-Pro's blocks placed by hand <c>0-3,3=id,4-7</c> (an identity block,
/// a copy of block 3 with <c>o_proj</c> and <c>down_proj</c> zeroed, after block 3).
/// </summary>
/// <remarks>
/// Grammar: comma-separated tokens, in target order; <c>N</c> is a copy of source block N; <c>A-B</c> copies of source
/// blocks A, A+1, …, B (A ≤ B); <c>N=id</c> or <c>A-B=id</c> identity blocks made from those blocks. Spaces around
/// tokens are ignored. The block count must be the target's <c>num_hidden_layers</c>, and every block number below the
/// source's (checked when planned). Only a map that uses every source block once, in order, plus identity blocks keeps
/// the function: a block applied twice (SOLAR) or dropped changes it, which <c>--preserve-function</c> refuses.
/// </remarks>
/// <param name="Text">The map as written.</param>
/// <param name="Blocks">One entry per target block, in order.</param>
public sealed record LayerMap(string Text, IReadOnlyList<LayerMap.Block> Blocks)
{
    /// <summary>One target block: the source block it copies, whether it is an identity block, and the token that said so.</summary>
    /// <param name="Source">The source block copied.</param>
    /// <param name="Identity">True for an identity block (output projections zeroed).</param>
    /// <param name="Token">The token of the map it came from, for messages.</param>
    public readonly record struct Block(int Source, bool Identity, string Token);

    /// <summary>Reads a map (grammar in the remarks).</summary>
    /// <exception cref="InvalidInputException">The text is empty, or a token is not <c>N</c>, <c>A-B</c>, <c>N=id</c> or
    /// <c>A-B=id</c> with A ≤ B; the message names the token.</exception>
    public static LayerMap Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        const string Grammar = "expected N, A-B (source blocks A to B), N=id or A-B=id (identity blocks copied from them), separated by commas";
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new InvalidInputException($"layer map '{text}' is empty; {Grammar}.");
        }
        var blocks = new List<Block>();
        foreach (var raw in text.Split(','))
        {
            var token = raw.Trim();
            if (token.Length == 0)
            {
                throw new InvalidInputException($"layer map '{text}' has an empty token; {Grammar}.");
            }
            var body = token;
            bool identity = false;
            int eq = token.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                var kind = token[(eq + 1)..].Trim();
                if (!kind.Equals("id", StringComparison.OrdinalIgnoreCase))
                {
                    throw new InvalidInputException($"layer map token '{token}': '={kind}' is not a kind of block; only '=id' (an identity block) is; {Grammar}.");
                }
                identity = true;
                body = token[..eq].Trim();
            }
            var ends = body.Split('-');
            if (ends.Length > 2 || !Number(ends[0], out int first) || !Number(ends[^1], out int last))
            {
                throw new InvalidInputException($"layer map token '{token}' is not a block number or a range; {Grammar}.");
            }
            if (last < first)
            {
                throw new InvalidInputException($"layer map token '{token}' runs backwards; write the blocks in ascending order (A-B with A ≤ B).");
            }
            for (int b = first; b <= last; b++)
            {
                blocks.Add(new Block(b, identity, token));
            }
            if (blocks.Count > 1_000_000)
            {
                throw new InvalidInputException($"layer map token '{token}' makes more than 1,000,000 blocks.");
            }
        }
        return new LayerMap(text.Trim(), blocks);
    }

    private static bool Number(string text, out int value) =>
        int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out value) && text.Trim().Length <= 7;

    /// <summary>
    /// Why this map, from a source of <paramref name="sourceBlocks"/> blocks, changes the function (empty when it keeps
    /// it): source blocks applied more than once, dropped, or out of order. Identity blocks never change it.
    /// </summary>
    public IReadOnlyList<string> FunctionProblems(int sourceBlocks)
    {
        var kept = Blocks.Select((b, i) => (b, i)).Where(x => !x.b.Identity).ToList();
        var problems = new List<string>();
        var twice = kept.GroupBy(x => x.b.Source).Where(g => g.Count() > 1).ToList();
        if (twice.Count > 0)
        {
            problems.Add($"layer map '{Text}': source block{(twice.Count == 1 ? "" : "s")} {Ranges(twice.Select(g => g.Key))} applied more than once (target blocks " +
                $"{Ranges(twice.SelectMany(g => g.Skip(1)).Select(x => x.i))} copy them again, as SOLAR's depth up-scaling): a block run twice changes the function; " +
                "identity blocks (N=id) keep it");
        }
        var missing = Enumerable.Range(0, sourceBlocks).Except(kept.Select(x => x.b.Source)).ToList();
        if (missing.Count > 0)
        {
            problems.Add($"layer map '{Text}': source block{(missing.Count == 1 ? "" : "s")} {Ranges(missing)} not used: the function changes");
        }
        var firsts = kept.GroupBy(x => x.b.Source).Select(g => g.First().b.Source).ToList();
        if (twice.Count == 0 && !firsts.SequenceEqual(firsts.Order()))
        {
            problems.Add($"layer map '{Text}': source blocks out of order: the function changes");
        }
        return problems;
    }

    /// <summary>Target block runs and where they come from, for the plan: <c>target 0–23 ← source 0–23; 24–31 ← source 8–15</c>.</summary>
    public static string Describe(IReadOnlyList<(int Source, bool Identity)> blocks)
    {
        var sb = new StringBuilder();
        int i = 0;
        while (i < blocks.Count)
        {
            int j = i;
            while (j + 1 < blocks.Count && blocks[j + 1].Identity == blocks[i].Identity && blocks[j + 1].Source == blocks[j].Source + 1)
            {
                j++;
            }
            if (sb.Length > 0)
            {
                sb.Append("; ");
            }
            sb.Append(i == j ? $"{i}" : $"{i}–{j}").Append(blocks[i].Identity ? " identity from source " : " ← source ")
              .Append(i == j ? $"{blocks[i].Source}" : $"{blocks[i].Source}–{blocks[j].Source}");
            i = j + 1;
        }
        return sb.ToString();
    }

    private static string Ranges(IEnumerable<int> values)
    {
        var v = values.Distinct().Order().ToList();
        var parts = new List<string>();
        for (int i = 0; i < v.Count;)
        {
            int j = i;
            while (j + 1 < v.Count && v[j + 1] == v[j] + 1)
            {
                j++;
            }
            parts.Add(i == j ? $"{v[i]}" : $"{v[i]}–{v[j]}");
            i = j + 1;
        }
        return string.Join(", ", parts);
    }
}
