using System.CommandLine;
using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Cli.Commands;

/// <summary>
/// The transfer-policy options, defined once and shared by <c>graft transfer</c> and <c>graft plan</c>, so that a plan
/// shows exactly what the same command line would transfer.
/// </summary>
internal sealed class PolicyOptions
{
    private readonly Option<bool> _strict = new("--strict") { Description = "Fail, writing nothing, unless every target tensor is fully carried over (no casts, no template or random values) and every source tensor is used." };
    private readonly Option<string?> _outShrink = new("--out-shrink") { Description = "Fewer out channels: first | largest-l1 | largest-l2 (default first)." };
    private readonly Option<string?> _newChannels = new("--new-channels") { Description = "More out channels: template | zeros | kaiming | copies (default template)." };
    private readonly Option<string?> _inChannels = new("--in-channels") { Description = "Other in-channel counts: auto | sum | mean | repeat-rescale | truncate | zero-extend (default auto)." };
    private readonly Option<string?> _kernel = new("--kernel") { Description = "Other kernel sizes: fit | bilinear | bicubic | pi-resize | reinit (default fit: centred pad/crop)." };
    private readonly Option<string?> _head = new("--head") { Description = "Classifier head with another class count: template | keep-first (default template)." };
    private readonly Option<string[]> _rules = new("--rule") { Description = $"Per-tensor override, repeatable: 'GLOB:key=value,...' with keys {string.Join(", ", TensorRule.Keys)} (layout: conv2d, convtranspose2d, conv2d/GROUPS, linear …).", AllowMultipleArgumentsPerToken = false };
    private readonly Option<string[]> _reinit = new("--reinit") { Description = "Reinitialise weights matching GLOB with their layer kind's init (convolutions Kaiming-normal fan_out/relu as torchvision; linear layers uniform ±1/√fan_in as PyTorch), repeatable." };
    private readonly Option<string[]> _skip = new("--skip") { Description = "Keep the template's values for tensors matching GLOB, repeatable." };
    private readonly Option<long> _seed = new("--seed") { Description = "Seed for random initialisation.", DefaultValueFactory = _ => 0, CustomParser = OptionText.WholeNumber("--seed") };
    private readonly Option<string?> _preset = new("--preset") { Description = "Start from a named policy: default | timm (like timm's load_pretrained) | keep-function. Other options override it." };
    private readonly Option<bool> _preserveFunction = new("--preserve-function") { Description = "Keep the source network's function (wider layers, larger kernels, more inputs): the keep-function preset, and refuse (exit 5) what cannot keep it." };
    private readonly Option<string[]> _renames = new("--rename") { Description = "Rename source tensors before matching, repeatable: 'REGEX=REPLACEMENT' (for example '^features\\.0\\.=stem.')." };
    private readonly Option<bool> _structural = new("--structural") { Description = "Pair tensors left unmatched by name in order, by role and rank; every guess is reported (refuse one with --rule 'GLOB:structural=false')." };
    private readonly Option<string?> _imageSize = new("--image-size") { Description = "Vision transformers: the target's image size in pixels, N or HxW (e.g. 384, 192x256); with the template's patch size it gives the position grid (for non-square grids)." };
    private readonly Option<string?> _layers = new("--layers") { Description = "Decoders with config.json: which source block each target block is, comma-separated in target order: N, A-B (source blocks A to B), N=id or A-B=id (identity blocks: copies with o_proj and down_proj zeroed). SOLAR: '0-23,8-31'; an identity block after block 3: '0-3,3=id,4-7'." };
    private readonly Option<string?> _cloneNoise = new("--clone-noise") { Description = "Decoders with config.json widened by copies: symmetric noise (std as a fraction of each weight's std, e.g. 1e-3; seed from --seed) on the copies of every widened input, +N on one copy and -N on its twin, so the function is kept to rounding and the copies differ." };
    private readonly Option<string[]> _groups = new("--group") { Description = "Declare layers sharing one channel decision, repeatable: 'producer[,producer…]->consumer[,consumer×BLOCK…]' (BLOCK = H·W through a flatten)." };

    /// <summary>Adds every policy option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { _preset, _preserveFunction, _strict, _outShrink, _newChannels, _inChannels, _kernel, _head, _rules, _reinit, _skip, _renames, _structural, _groups, _imageSize, _layers, _cloneNoise, _seed })
        {
            command.Options.Add(o);
        }
    }

    /// <summary>True when <c>--preserve-function</c> was given: the caller refuses plans that cannot keep the function.</summary>
    public bool PreserveFunction(ParseResult parse) => parse.GetValue(_preserveFunction);

    /// <summary>The policy the command line asks for; bad words and rules throw <see cref="InvalidInputException"/> (exit 2).</summary>
    public TransferPolicy Read(ParseResult parse)
    {
        var presetName = parse.GetValue(_preset);
        if (parse.GetValue(_preserveFunction) && presetName is not null)
        {
            throw new InvalidInputException("--preserve-function is a preset of its own; drop --preset.");
        }
        // --preserve-function plans with the keep-function preset and refuses, through PreserveFunction.Problems (exit 5),
        // whatever cannot keep the function. Not PreserveFunction.Policy: its explicit zero-extend in-channel rule makes
        // the planner throw on inputs that shrink, which reads as a rule the user typed that does not fit (exit 2).
        var preset = parse.GetValue(_preserveFunction) ? TransferPresets.KeepFunction
            : presetName is null ? TransferPolicy.Default : OptionText.Parse("--preset", presetName, TransferPresets.Get);
        return preset with
        {
            Strict = parse.GetValue(_strict) || preset.Strict,
            Seed = parse.GetValue(_seed),
            OutShrink = Word(parse.GetValue(_outShrink), preset.OutShrink, "--out-shrink"),
            NewChannels = Word(parse.GetValue(_newChannels), preset.NewChannels, "--new-channels"),
            InChannels = Word(parse.GetValue(_inChannels), preset.InChannels, "--in-channels"),
            Kernel = Word(parse.GetValue(_kernel), preset.Kernel, "--kernel"),
            Head = Word(parse.GetValue(_head), preset.Head, "--head"),
            Rules = [
                .. preset.Rules,
                .. (parse.GetValue(_rules) ?? []).Select(r => OptionText.Parse("--rule", r, TensorRule.Parse)),
                .. (parse.GetValue(_reinit) ?? []).Select(g => new TensorRule(g) { Reinit = true }),
                .. (parse.GetValue(_skip) ?? []).Select(g => new TensorRule(g) { Skip = true }),
            ],
            Renames = [.. preset.Renames, .. (parse.GetValue(_renames) ?? []).Select(r => OptionText.Parse("--rename", r, RenameRule.Parse))],
            StructuralMatching = parse.GetValue(_structural) || preset.StructuralMatching,
            Groups = [.. preset.Groups, .. (parse.GetValue(_groups) ?? []).Select(g => OptionText.Parse("--group", g, ChannelGroup.Parse))],
            ImageSize = parse.GetValue(_imageSize) is { } image ? ParseImageSize(image) : preset.ImageSize,
            Transformer = parse.GetValue(_layers) is null && parse.GetValue(_cloneNoise) is null ? preset.Transformer : (preset.Transformer ?? new()) with
            {
                Layers = parse.GetValue(_layers) is { } layers ? OptionText.Parse("--layers", layers, Graft.Transformers.LayerMap.Parse) : preset.Transformer?.Layers,
                CloneNoise = parse.GetValue(_cloneNoise) is { } noise ? ParseNoise(noise) : preset.Transformer?.CloneNoise ?? 0,
            },
        };
    }

    private static double ParseNoise(string text) =>
        double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) && v >= 0
            ? v
            : throw new InvalidInputException($"--clone-noise: expected a number ≥ 0 (the noise std as a fraction of each weight's std, e.g. 1e-3), got '{text}'.");

    private static Graft.Transforms.PatchGrid ParseImageSize(string text)
    {
        try
        {
            return Graft.Transforms.PatchGrid.Parse(text);
        }
        catch (FormatException e)
        {
            throw new InvalidInputException($"--image-size: {e.Message}", e);
        }
    }

    private static T Word<T>(string? text, T fallback, string option) where T : struct, Enum =>
        text is null ? fallback : PolicyWords.Parse<T>(text, option);
}
