using System.CommandLine;
using Graft.Checkpoints;
using Graft.Checkpoints.Inspection;

namespace Graft.Cli.Commands;

/// <summary>
/// <c>graft diff A B</c>: what differs between two checkpoints (names, shapes, dtypes), grouped by layer. Headers only;
/// values are not compared. Exit 0 whether or not they differ, unless <c>--exit-code</c> (then 1 when they differ, like git diff).
/// </summary>
internal static class DiffCommand
{
    public static Command Create(CliContext ctx)
    {
        var a = new Argument<FileInfo>("a") { Description = "First checkpoint." };
        var b = new Argument<FileInfo>("b") { Description = "Second checkpoint." };
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts instead of a table." };
        var exitCode = new Option<bool>("--exit-code") { Description = "Exit with 1 when the checkpoints differ, 0 when they do not (like git diff --exit-code)." };
        var all = new Option<bool>("--all") { Description = "List every tensor of layers that are the same, instead of one line per such layer." };
        var cmd = new Command("diff", "Show which tensors are only in A, only in B, or differ in shape or dtype, grouped by layer (values are not compared).")
        {
            a, b, json, exitCode, all,
        };
        cmd.SetAction(parse =>
        {
            using var ra = CheckpointFile.Open(parse.GetValue(a)!.FullName);
            using var rb = CheckpointFile.Open(parse.GetValue(b)!.FullName);
            var diff = CheckpointDiff.Compare(ra, rb);
            if (parse.GetValue(json))
            {
                CliJson.Write(ctx.Out, diff.WriteJson);
            }
            else
            {
                Render(ctx, diff, parse.GetValue(all));
            }
            return parse.GetValue(exitCode) && diff.Differs ? ExitCodes.Differs : ExitCodes.Ok;
        });
        return cmd;
    }

    private static readonly TextTableColumn[] Columns =
        [new("layer"), new("tensor"), new("A"), new("B"), new("difference")];

    /// <summary>
    /// Lists the layers that differ, tensor by tensor; layers that are the same are counted on one line (every row of
    /// them would say "same"), unless <paramref name="all"/> asks for them. Identical files print no table at all.
    /// </summary>
    private static void Render(CliContext ctx, CheckpointDiff diff, bool all)
    {
        if (diff.Differs || all)
        {
            TextTable.Write(ctx, Columns, () => diff.Layers.Where(layer => all || !layer.Same).SelectMany(layer =>
            {
                var name = layer.Layer.Length == 0 ? "(top level)" : layer.Layer;
                return Rows(layer, name);
            }));
        }
        int sameLayers = diff.Layers.Count(l => l.Same);
        if (!all && sameLayers > 0 && diff.Differs)
        {
            ctx.Out.WriteLine($"{sameLayers} layer{(sameLayers == 1 ? "" : "s")} with the same names, shapes and dtypes ({diff.Layers.Where(l => l.Same).Sum(l => l.Tensors.Count)} tensors; --all lists them).");
        }
        ctx.Out.WriteLine($"A: {TerminalText.Escape(diff.A)}");
        ctx.Out.WriteLine($"B: {TerminalText.Escape(diff.B)}");
        ctx.Out.WriteLine(diff.Differs
            ? $"{diff.Count(DiffKind.OnlyInA)} only in A, {diff.Count(DiffKind.OnlyInB)} only in B, {diff.Count(DiffKind.ShapeDiffers)} with another shape, {diff.Count(DiffKind.DTypeDiffers)} with another dtype, {diff.Count(DiffKind.Same)} the same."
            : $"no differences in names, shapes or dtypes ({diff.Count(DiffKind.Same)} tensors in {sameLayers} layers; values not compared).");
    }

    private static IEnumerable<TextCell[]> Rows(LayerDiff layer, string name) =>
            layer.Tensors.Select((t, i) => new TextCell[]
            {
                i == 0 ? name : "", layer.Layer.Length == 0 ? t.Name : t.Name[(layer.Layer.Length + 1)..], Side(t.A), Side(t.B), new(KindText(t.Kind), KindColour(t.Kind)),
            });

    private static string Side(TensorInfo? t) => t is null ? "—" : $"{t.Shape} {t.DType.SafetensorsName()}";

    private static string KindText(DiffKind kind) => kind switch
    {
        DiffKind.OnlyInA => "only in A",
        DiffKind.OnlyInB => "only in B",
        DiffKind.ShapeDiffers => "shape differs",
        DiffKind.DTypeDiffers => "dtype differs",
        _ => "same",
    };

    private static string KindColour(DiffKind kind) => kind switch
    {
        DiffKind.OnlyInA => "31",
        DiffKind.OnlyInB => "32",
        DiffKind.ShapeDiffers => "33",
        DiffKind.DTypeDiffers => "36",
        _ => "90",
    };
}
