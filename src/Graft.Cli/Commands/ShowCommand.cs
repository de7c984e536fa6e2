using System.CommandLine;
using Graft.Checkpoints;
using Graft.Cli.Visual;
using static TorchSharp.torch;

namespace Graft.Cli.Commands;

/// <summary>
/// <c>graft show FILE --tensor NAME --out grid.png [--compare OTHER [--compare-tensor NAME]]</c>: the filters of a
/// convolution as an image grid, alone or beside another checkpoint's (source and adapted side by side).
/// </summary>
internal static class ShowCommand
{
    public static Command Create(CliContext ctx)
    {
        var file = new Argument<FileInfo>("file") { Description = "Checkpoint holding the convolution weight." };
        var tensor = new Option<string>("--tensor") { Description = "Name of the convolution weight (out, in, k…), e.g. conv1.weight.", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "PNG to write (atomically).", Required = true };
        var compare = new Option<FileInfo?>("--compare") { Description = "Another checkpoint (say, the transferred one): its filters are drawn beside the first, at the same pixel scale." };
        var compareTensor = new Option<string?>("--compare-tensor") { Description = "Tensor name in the --compare checkpoint (default: the same as --tensor)." };
        var scale = new Option<int?>("--scale") { Description = "Pixels per kernel element (default: about 32 pixels per tile side).", CustomParser = r => (int)OptionText.WholeNumber("--scale", int.MinValue, int.MaxValue, "a whole number of pixels")(r) };
        var cmd = new Command("show", "Draw the filters of a convolution layer as an image grid (3 inputs: colour tiles; otherwise a grey tile per filter and input, or the mean over inputs when there would be more than 4096 tiles). Mid-grey is 0; white and black are ±max|w| of that tensor.")
        {
            file, tensor, output, compare, compareTensor, scale,
        };
        cmd.SetAction(parse =>
        {
            var path = parse.GetValue(file)!.FullName;
            var name = parse.GetValue(tensor)!;
            var outPath = parse.GetValue(output)!.FullName;
            if (!outPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            {
                // show writes PNG and nothing else: PNG bytes under another image extension would mislead every viewer.
                throw new InvalidInputException($"{outPath}: show writes PNG images; name the output *.png.");
            }
            var otherPath = parse.GetValue(compare)?.FullName;
            var otherName = parse.GetValue(compareTensor) ?? name;
            // The picture is checked against every file the checkpoints read (their shards and data files too) by identity.
            using var outputs = new OutputSet();
            outputs.AddOutput(outPath, "image");
            using var scope = NewDisposeScope();
            var first = Load(path, name, outputs, "checkpoint");
            var second = otherPath is null ? null : Load(otherPath, otherName, outputs, "--compare checkpoint");
            long side = Math.Max(MaxKernelSide(first), second is null ? 0 : MaxKernelSide(second));
            var given = parse.GetValue(scale);
            if (given is < 1 or > 256)
            {
                throw new InvalidInputException($"--scale {given}: expected 1 to 256 pixels per kernel element.");
            }
            // The image is bounded: by default the scale shrinks until every panel fits FilterGrid.DefaultPixels; a size
            // that cannot be drawn within FilterGrid.MaxPixels is refused, before any pixel is allocated.
            long[][] shapes = second is null ? [first.shape] : [first.shape, second.shape];
            int s = given ?? shapes.Select(sh => FilterGrid.FitScale(sh, FilterGrid.AutoScale(side), FilterGrid.DefaultPixels) ?? 1).Min();
            foreach (var sh in shapes)
            {
                if (!FilterGrid.TrySize(sh, s, out var w, out var h) || w > FilterGrid.MaxPixels / h)
                {
                    var size = w > 0 && h > 0 ? $"{w}×{h} pixels" : "too many pixels to count";
                    throw new InvalidInputException($"{new Shape(sh)} at {s} pixels per kernel element would be {size}, over the {FilterGrid.MaxPixels} pixels (4096×4096) show draws; {(given is null ? "the tensor has too many filters to draw" : "pass a smaller --scale")}.");
                }
            }
            var panels = new List<(Raster, string, string)> { Panel(path, name, first, s) };
            if (second is not null)
            {
                panels.Add(Panel(otherPath!, otherName, second, s));
            }
            using var bmp = Png.Panels(panels);
            Png.Write(outPath, bmp);
            outputs.Commit();
            ctx.Out.WriteLine(TerminalText.Escape($"wrote {outPath} ({bmp.Width}×{bmp.Height}): {string.Join("; ", panels.Select(p => p.Item2 + " — " + p.Item3))}"));
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static Tensor Load(string path, string name, OutputSet outputs, string role)
    {
        using var reader = CheckpointFile.Open(path);
        outputs.AddInput(reader, role);
        if (!reader.TryGetTensor(name, out var info))
        {
            var convs = reader.Tensors.Where(t => t.Shape.Rank >= 3).Select(t => t.Name).Take(12).ToList();
            throw new InvalidInputException($"{path}: no tensor '{name}'" + (convs.Count > 0 ? $"; convolution weights here: {string.Join(", ", convs)}." : "; it holds no convolution weights."));
        }
        if (info.Shape.Rank < 3 || info.ByteLength == 0)
        {
            throw new InvalidInputException($"{path}: tensor '{name}' has shape {info.Shape}: {(info.Shape.Rank < 3 ? "not a convolution weight (out, in, k…)" : "empty")}, so it has no filters to show.");
        }
        if (TensorBridge.ToScalarType(info.DType) is null)
        {
            throw new InvalidInputException($"{path}: tensor '{name}' is {info.DType}, which TorchSharp cannot hold, so Graft cannot draw it.");
        }
        return TensorBridge.Read(reader, info);
    }

    private static long MaxKernelSide(Tensor t)
    {
        var (h, w) = FilterGrid.KernelSize(t.shape);
        return Math.Max(h, w);
    }

    private static (Raster, string, string) Panel(string path, string name, Tensor weight, int scale)
    {
        var raster = FilterGrid.Render(weight, scale, name);
        var mode = FilterGrid.ModeFor(weight.shape) switch
        {
            FilterGridMode.Rgb => "RGB",
            FilterGridMode.PerInput => weight.shape[1] == 1 ? "grey" : "row = filter, column = input",
            _ => "mean over inputs",
        };
        float max = weight.detach().to(ScalarType.Float32).abs().max().item<float>();
        return (raster, $"{Path.GetFileName(path)}: {name} {new Shape(weight.shape)}", $"{mode}; grey = 0, ±{max:0.###} = white/black");
    }
}
