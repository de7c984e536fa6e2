using System.CommandLine;
using Graft.Checkpoints;
using Graft.Checkpoints.Inspection;
using Spectre.Console;

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
                ctx.Out.WriteLine(diff.ToJson());
            }
            else
            {
                Render(ctx, diff, parse.GetValue(all));
            }
            return parse.GetValue(exitCode) && diff.Differs ? ExitCodes.Differs : ExitCodes.Ok;
        });
        return cmd;
    }

    private static void Render(CliContext ctx, CheckpointDiff diff, bool all)
    {
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("layer").AddColumn("tensor").AddColumn("A").AddColumn("B").AddColumn("difference");
        foreach (var layer in diff.Layers)
        {
            var name = layer.Layer.Length == 0 ? "(top level)" : layer.Layer;
            if (layer.Same && !all)
            {
                table.AddRow(Markup.Escape(name), $"{layer.Tensors.Count} tensor(s)", "", "", KindMarkup(DiffKind.Same));
                continue;
            }
            bool first = true;
            foreach (var t in layer.Tensors)
            {
                var suffix = layer.Layer.Length == 0 ? t.Name : t.Name[(layer.Layer.Length + 1)..];
                table.AddRow(first ? Markup.Escape(name) : "", Markup.Escape(suffix), Side(t.A), Side(t.B), KindMarkup(t.Kind));
                first = false;
            }
        }
        ctx.Console.Write(table);
        ctx.Console.WriteLine($"A: {diff.A}");
        ctx.Console.WriteLine($"B: {diff.B}");
        ctx.Console.WriteLine(diff.Differs
            ? $"{diff.Count(DiffKind.OnlyInA)} only in A, {diff.Count(DiffKind.OnlyInB)} only in B, {diff.Count(DiffKind.ShapeDiffers)} with another shape, {diff.Count(DiffKind.DTypeDiffers)} with another dtype, {diff.Count(DiffKind.Same)} the same."
            : $"no differences in names, shapes or dtypes ({diff.Count(DiffKind.Same)} tensors; values not compared).");
    }

    private static string Side(TensorInfo? t) => t is null ? "[grey]—[/]" : $"{t.Shape} {t.DType.SafetensorsName()}";

    private static string KindMarkup(DiffKind kind) => kind switch
    {
        DiffKind.OnlyInA => "[red]only in A[/]",
        DiffKind.OnlyInB => "[green]only in B[/]",
        DiffKind.ShapeDiffers => "[yellow]shape differs[/]",
        DiffKind.DTypeDiffers => "[cyan]dtype differs[/]",
        _ => "[grey]same[/]",
    };
}
