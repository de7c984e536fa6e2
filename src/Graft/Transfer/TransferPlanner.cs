using Graft.Checkpoints;

namespace Graft.Transfer;

/// <summary>
/// Makes a <see cref="TransferPlan"/> from tensor descriptions alone (names, dtypes, shapes): no data is read, so a
/// plan for a huge checkpoint is instant and every shape is checked before anything moves.
/// </summary>
/// <remarks>
/// A short pipeline, each stage its own type: match (<see cref="NameMatcher"/>, or pairs made by the graph) → classify
/// each template tensor once into a typed <see cref="TensorRole"/> (<see cref="TensorRoles"/>) → resolve rules and
/// gather what the stages read (<see cref="PlanningContext"/>) → decide channel groups (<see cref="ChannelGroupDecisions"/>)
/// → plan per role, layer by layer (<see cref="LayerPlanner"/>) → attach the checked chain (<see cref="CheckedChain"/>).
/// </remarks>
public static class TransferPlanner
{
    /// <summary>True when <paramref name="layer"/> names a patch embedding, whose kernel changes are PI-resized by default (as timm).</summary>
    internal static bool IsPatchEmbedding(string layer) => NameConventions.IsPatchEmbedding(layer);

    /// <summary>True when <paramref name="name"/> is an absolute position embedding.</summary>
    internal static bool IsPositionEmbedding(string name) => NameConventions.IsPositionEmbedding(name);

    /// <summary>Plans the transfer of <paramref name="source"/> tensors into the shapes of <paramref name="template"/>.</summary>
    /// <param name="source">Source tensors.</param>
    /// <param name="template">Target tensors (shapes and init).</param>
    /// <param name="policy">The policy; its declared <see cref="TransferPolicy.Groups"/> take part.</param>
    /// <param name="sourcePath">Names the source in the plan.</param>
    /// <param name="templatePath">Names the template in the plan.</param>
    /// <param name="groups">Dependency groups known otherwise (traced from a module); checked against declared ones.</param>
    /// <exception cref="TransferPlanException">
    /// A rule asks for something that cannot be applied to a tensor; rename rules conflict; dependency groups disagree.
    /// </exception>
    public static TransferPlan Plan(IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template, TransferPolicy policy,
        string sourcePath = "<source>", string templatePath = "<template>", ChannelGroups? groups = null) =>
        Plan(source, template, policy, sourcePath, templatePath, groups, matches: null);

    /// <summary>Like the overload without <paramref name="matches"/>, with the pairs made already (by names and by the graph).</summary>
    internal static TransferPlan Plan(IReadOnlyList<TensorInfo> source, IReadOnlyList<TensorInfo> template, TransferPolicy policy,
        string sourcePath, string templatePath, ChannelGroups? groups, IReadOnlyDictionary<string, NameMatch>? matches)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(policy);

        // Match, then classify each template tensor once.
        matches ??= NameMatcher.Match(source, template, policy);
        var roles = TensorRoles.FromNames(template);
        var context = new PlanningContext(source, template, policy, matches, roles);
        context.Notes.AddGuesses(matches.Values);

        // Decide channel groups, then plan per role, layer by layer.
        var channelGroups = new ChannelGroupDecisions(context, policy.Groups, groups ?? ChannelGroups.None);
        var targets = PlanLayers(new LayerPlanner(context, channelGroups), template);

        var used = new HashSet<string>(targets.Length, StringComparer.Ordinal);
        foreach (var t in targets)
        {
            if (t.Source is not null)
            {
                used.Add(t.Source.Name);
            }
        }
        var unused = source.Where(s => !used.Contains(s.Name)).ToList();
        return new TransferPlan(sourcePath, templatePath, targets, unused, policy) { Groups = channelGroups.Planned(), Notes = context.Notes.All() };
    }

    /// <summary>
    /// Plans every layer (the template's tensors grouped by name prefix, in order of first appearance) and returns the
    /// plans in template order.
    /// </summary>
    private static TargetPlan[] PlanLayers(LayerPlanner planner, IReadOnlyList<TensorInfo> template)
    {
        var layers = LayerGroups.Of(template);
        var plans = new TargetPlan[template.Count];
        for (int l = 0; l < layers.Count; l++)
        {
            var indices = layers.Members(l);
            var tensors = new List<TensorInfo>(indices.Length);
            foreach (var i in indices)
            {
                tensors.Add(template[i]);
            }
            var planned = planner.PlanLayer(TensorName.LayerOf(tensors[0].Name), tensors);
            for (int k = 0; k < indices.Length; k++)
            {
                plans[indices[k]] = planned[k];
            }
        }
        return plans;
    }
}
