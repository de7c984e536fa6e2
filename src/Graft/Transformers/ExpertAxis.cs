using Graft.Checkpoints.Transformers;
using Graft.Transfer;

namespace Graft.Transformers;

/// <summary>
/// The experts of a Mixtral (<c>block_sparse_moe</c>) when their number or <c>num_experts_per_tok</c> changes: which
/// source expert each target expert copies (its router row with it), and whether top-k routing survives.
/// </summary>
/// <remarks>
/// Mixtral routes a token by softmax over the router's logits, keeps the top k, and renormalises their weights to sum 1.
/// Give each of E experts c copies whose router rows are its own: the softmax gives every copy p_j / c, the copies of
/// one expert tie, so the top c·k are exactly the c copies of each of the source's top k, and renormalised their weights
/// sum to p_j / Σ_top p: the source's output. With top-k unchanged the top slots go to copies of the best experts
/// first, which changes the mixture, except for top-1 (any m ≤ c copies of the best expert, renormalised, are that
/// expert). So E → c·E keeps the function exactly when the target routes to c·k experts, or when both route to one
/// (k = 1, k' ≤ c); fewer experts (the first E' kept) or any other top-k change the routing. A count that is no whole
/// multiple of E is refused, as every other axis: no copy scheme keeps the routing there.
/// </remarks>
internal static class ExpertAxis
{
    /// <summary>The expert axis from <paramref name="s"/> to <paramref name="t"/> (both mixtures); its Problem says why the routing changes.</summary>
    /// <exception cref="TransferPlanException">More experts, but not a whole multiple.</exception>
    public static AxisPlan Of(TransformerConfig s, TransformerConfig t)
    {
        int e = s.Experts, k = s.ExpertsPerToken, e2 = t.Experts, k2 = t.ExpertsPerToken;
        string topK = k == k2 ? $"top-{k}" : $"top-{k}→{k2}";
        if (e2 < e)
        {
            var first = Enumerable.Range(0, e2).Select(i => new[] { i }).ToArray();
            return new AxisPlan("experts", e, e2, first, 1.0, "truncate", $"experts {e}→{e2} ({topK}): the first {e2} experts and their router rows kept",
                $"experts {e}→{e2}: only the first {e2} experts kept (their router rows with them): tokens routed to the others change");
        }
        if (e2 % e != 0)
        {
            throw new TransferPlanException($"experts {e}→{e2} ({s.Path} → {t.Path}): growth by a factor that is not whole is not supported " +
                $"(copies of every expert keep the routing only in whole numbers); use a multiple of {e}.");
        }
        int c = e2 / e;
        var map = Enumerable.Range(0, e2).Select(i => new[] { i % e }).ToArray();
        bool exact = k2 == c * k || (k == 1 && k2 <= c);
        string what = c == 1
            ? $"experts {e} ({topK}): each copied with its router row"
            : $"experts {e}→{e2} ({topK}): {c} copies of each expert (expert i copies expert i mod {e}), each with its expert's router row";
        string? problem = exact ? null : c == 1
            ? $"num_experts_per_tok {k}→{k2}: tokens are routed to another number of experts, the function changes"
            : $"experts {e}→{e2} with num_experts_per_tok {k}→{k2}: copies of an expert tie in the router, so top-{k2} picks copies of the best experts first and the mixture changes; " +
              $"exact only with num_experts_per_tok {c * k}" + (k == 1 ? $" (or at most {c} for a top-1 source)" : "");
        return new AxisPlan("experts", e, e2, map, 1.0, c == 1 ? "copy" : "experts.copies", what, problem);
    }
}
