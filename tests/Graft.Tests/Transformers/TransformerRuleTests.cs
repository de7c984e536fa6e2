using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Tests.Transformers;

/// <summary>
/// Policy rules on a plan made by role (issue 25, item 6: "other inits by rule"): <c>new-channels</c> chooses the new
/// token rows (instead of the mean of the old rows) and <c>reinit</c> restarts a tensor. Checked on tiny Llama-style
/// checkpoints against the values the tests compute themselves and the float64 <see cref="ReferenceDecoder"/>.
/// </summary>
public sealed class TransformerRuleTests : IDisposable
{
    private readonly DecoderFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly TinySpec Base = new();
    private static readonly TinySpec Larger = Base with { Vocab = 1100 };
    private static readonly string[] Rows = ["model.embed_tokens.weight", "lm_head.weight"];

    private (string Source, string Template, string Output, TransferReport Report) Run(TinySpec to, bool preserve, params string[] rules)
    {
        var src = _dir.Write("src", Base, seed: 11);
        var tpl = _dir.Write("tpl", to, seed: 12);
        var (output, report) = _dir.Transfer(src, tpl, preserve, rules: [.. rules.Select(TensorRule.Parse)]);
        return (src, tpl, output, report);
    }

    [Theory]
    [InlineData("zeros")]
    [InlineData("copies")]
    [InlineData("template")]
    public void Vocabulary_NewChannelsRule_FillsNewRows_OldRowsAndLogitsKept(string fill)
    {
        var (src, tpl, output, report) = Run(Larger, preserve: true, "*embed_tokens.weight:new-channels=" + fill, "lm_head.weight:new-channels=" + fill);
        var (s, t, o) = (TinySpec.Load(src), TinySpec.Load(tpl), TinySpec.Load(output));
        foreach (var name in Rows)
        {
            var (a, b) = (s[name], o[name]);
            int hidden = (int)a.Shape[1];
            Assert.Equal([1100L, hidden], b.Shape);
            Assert.Equal(a.Data, b.Data.AsSpan(0, a.Data.Length).ToArray());
            for (int r = 1000; r < 1100; r++)
            {
                for (int c = 0; c < hidden; c++)
                {
                    var expected = fill switch { "zeros" => 0.0, "copies" => a[r % 1000, c], _ => t[name][r, c] };
                    Assert.True(b[r, c] == expected, $"{name} [{r}, {c}]: {b[r, c]}, expected {expected} ({fill})");
                }
            }
            Assert.Contains(report.Targets, x => x.Name == name && x.Status == TargetStatus.Adapted);
        }
        // The template's rows are not all zero, nor copies: the three fills are told apart by the checks above.
        Assert.Contains(t["lm_head.weight"].Data.Skip(1000 * 64), v => v != 0);
        var tokens = DecoderFolder.Tokens(1000);
        DecoderFolder.AssertLogitsEqual(DecoderFolder.Logits(src, Base, tokens), DecoderFolder.Logits(output, Larger, tokens), columns: 1000);
    }

    [Fact]
    public void Vocabulary_KaimingRule_IsRefusedNamingTheTensorAndTheChoices()
    {
        var e = Assert.Throws<TransferPlanException>(() => Run(Larger, preserve: false, "lm_head.weight:new-channels=kaiming"));
        Assert.Contains("lm_head.weight: new-channels=kaiming-normal", e.Message);
        Assert.Contains("template, zeros or copies", e.Message);
    }

    [Theory]
    [InlineData("model.layers.0.mlp.up_proj.weight:kernel=pi-resize", "model.layers.0.mlp.up_proj.weight: rule key kernel does not apply")]
    [InlineData("*.q_proj.weight:in-channels=mean,out-shrink=largest-l2", "model.layers.0.self_attn.q_proj.weight: rule keys out-shrink, in-channels do not apply")]
    [InlineData("*.down_proj.weight:new-channels=zeros", "model.layers.0.mlp.down_proj.weight: rule key new-channels does not apply")]
    public void RuleKeysAPlanByRoleDoesNotApply_AreRefusedNotIgnored(string rule, string message)
    {
        var e = Assert.Throws<TransferPlanException>(() => Run(Larger, preserve: false, rule));
        Assert.Contains(message, e.Message);
        Assert.False(File.Exists(Path.Combine(_dir.Root, "out", "model.safetensors")));
    }

    [Fact]
    public void Reinit_OnAProjection_RestartsIt_AndPreserveFunctionRefuses()
    {
        const string name = "model.layers.1.self_attn.q_proj.weight";
        var (src, _, output, report) = Run(Base, preserve: false, name + ":reinit");
        var (s, o) = (TinySpec.Load(src), TinySpec.Load(output));
        var t = report.Targets.Single(x => x.Name == name);
        Assert.Equal(TargetStatus.Reinitialized, t.Status);
        // nn.Linear's init: uniform in ±1/√fan_in; nothing of the source.
        double bound = 1 / Math.Sqrt(s[name].Shape[1]);
        Assert.All(o[name].Data, v => Assert.InRange(v, -bound, bound));
        Assert.NotEqual(s[name].Data, o[name].Data);
        Assert.True(o[name].Data.Select(Math.Abs).Max() > bound / 2, "the draw spans its range");
        // Everything else still carried over.
        Assert.Equal(s["model.layers.1.self_attn.k_proj.weight"].Data, o["model.layers.1.self_attn.k_proj.weight"].Data);
        var refused = Assert.Throws<TransferStrictException>(() => _dir.Transfer(src, Path.Combine(_dir.Root, "tpl", "model.safetensors"), preserve: true,
            name: "strict", rules: [TensorRule.Parse(name + ":reinit")]));
        Assert.Contains(name + ": reinitialised by a rule: the function changes", refused.Message);
    }

    [Fact]
    public void Reinit_OnAnRmsNormScale_StartsAtOne()
    {
        const string name = "model.layers.0.input_layernorm.weight";
        var (_, _, output, _) = Run(Base, preserve: false, name + ":reinit");
        Assert.All(TinySpec.Load(output)[name].Data, v => Assert.Equal(1.0, v));
    }
}
