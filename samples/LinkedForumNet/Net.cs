using Graft;
using Graft.Linked;
using Graft.Transforms;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

/// <summary>
/// The forum question's network: conv_1 = Conv2d(16→32, k3, pad 1), and conv_2 (32→64) whose weight is, at every
/// forward pass, conv_1's weight with its inputs repeated and rescaled (16→32), its outputs copied (32→64) and then
/// squared; conv_2's bias is conv_1's, copied. Only conv_1 is a parameter: 16·32·9 + 32 = 4,640.
/// </summary>
internal sealed class Net : nn.Module<Tensor, Tensor>
{
    // Fields of type Module are registered by RegisterComponents() under their field names, which become the state-dict
    // keys (conv_1.weight, conv_1.bias). A LinkedConv holds its source without registering it, so conv_1 is counted,
    // saved and stepped by the optimizer once.
#pragma warning disable IDE1006 // The question's names.
    private readonly Conv2d conv_1;
    private readonly LinkedConv conv_2;
#pragma warning restore IDE1006

    public Net() : base(nameof(Net))
    {
        conv_1 = nn.Conv2d(16, 32, 3, padding: 1);
        var conv = Layout.Conv(2);
        conv_2 = Link.Conv2d(
            conv_1,
            weight: InChannels.RepeatRescale(conv, 16, 32)
                .Then(OutChannels.Apply(conv, ChannelMap.Cyclic(32, 64), ChannelFill.Zeros))
                .Then(ElementWise.Square),
            bias: LinkedBias.Derived(OutChannels.Apply(Layout.Vector, ChannelMap.Cyclic(32, 64), ChannelFill.Zeros)),
            inChannels: 32,
            outChannels: 64);
        RegisterComponents();   // without it, parameters() and state_dict() are empty
    }

    /// <summary>conv_1's weight, for the sample's checks.</summary>
    public Parameter Conv1Weight => conv_1.weight!;

    public override Tensor forward(Tensor input) => conv_2.forward(conv_1.forward(input));
}
