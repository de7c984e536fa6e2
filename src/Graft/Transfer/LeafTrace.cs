using TorchSharp;
using static TorchSharp.torch;

namespace Graft.Transfer;

/// <summary>
/// The forward pass both tracers make (<see cref="ChannelTracer"/>, <see cref="FlowTracer"/>): hooks on every leaf
/// module, one pass in eval mode under no-grad on a seeded random input on the module's own device, the hooks removed
/// and the training mode restored whatever happens. The tracers differ only in what they record.
/// </summary>
internal static class LeafTrace
{
    /// <summary>A batch-first input shape and a module whose forward takes one tensor, or an <see cref="ArgumentException"/>.</summary>
    public static nn.Module<Tensor, Tensor> Traceable(nn.Module module, IReadOnlyList<long> inputShape)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(inputShape);
        if (inputShape.Count < 2 || inputShape.Any(d => d < 1))
        {
            throw new ArgumentException($"Input shape ({string.Join(",", inputShape)}) must be batch first with at least two positive dimensions.", nameof(inputShape));
        }
        return module as nn.Module<Tensor, Tensor>
            ?? throw new ArgumentException($"Tracing needs a module whose forward takes one tensor and returns one; {module.GetType().Name} does not.", nameof(module));
    }

    /// <summary>
    /// Runs the pass: <paramref name="enter"/> and <paramref name="leave"/> hear each tensor-to-tensor leaf (its name, the
    /// module and its input; its name and output), <paramref name="untraceable"/> each other leaf that holds parameters,
    /// <paramref name="input"/> the input tensor; <paramref name="result"/> is made before the pass's tensors are disposed.
    /// </summary>
    public static T Run<T>(nn.Module module, IReadOnlyList<long> inputShape, ScalarType dtype,
        Action<string, nn.Module<Tensor, Tensor>, Tensor> enter, Action<string, Tensor> leave, Action<string>? untraceable,
        Action<Tensor> input, Func<T> result)
    {
        var root = Traceable(module, inputShape);
        var removers = new List<Action>();
        bool wasTraining = module.training;
        using var scope = NewDisposeScope();
        try
        {
            module.eval();
            foreach (var (name, m) in module.named_modules())
            {
                if (m.children().Any())
                {
                    continue;
                }
                var leafName = name;
                if (m is nn.Module<Tensor, Tensor> leaf)
                {
                    var pre = leaf.register_forward_pre_hook((mod, x) =>
                    {
                        enter(leafName, mod, x);
                        return null!;
                    });
                    var post = leaf.register_forward_hook((mod, x, output) =>
                    {
                        leave(leafName, output);
                        return null!;
                    });
                    removers.Add(pre.remove);
                    removers.Add(post.remove);
                }
                else if (untraceable is not null && m.parameters(recurse: false).Any())
                {
                    untraceable(leafName);
                }
            }
            using var noGrad = no_grad();
            var gen = new Generator(0x5eed);
            var device = module.parameters().Concat(module.buffers()).Select(t => t.device).FirstOrDefault() ?? CPU;
            var x = randn(inputShape.ToArray(), dtype: dtype, generator: gen).to(device);
            input(x);
            try
            {
                root.call(x);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new ArgumentException($"Tracing failed: the forward pass on an input of shape ({string.Join(",", inputShape)}) threw: {e.Message}", nameof(inputShape), e);
            }
            return result();
        }
        finally
        {
            foreach (var r in removers)
            {
                r();
            }
            module.train(wasTraining);
        }
    }
}
