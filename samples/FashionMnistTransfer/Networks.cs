using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

/// <summary>The networks of the comparison, all TorchVision .NET ResNets under torchvision's state-dict names.</summary>
internal static class Networks
{
    /// <summary>ML.NET's ResNet-18 has one more basic block in its last stage than torchvision's resnet18.</summary>
    public static readonly int[] Blocks = [2, 2, 2, 3];

    /// <summary>
    /// TorchVision's ResNet with <see cref="Blocks"/> basic blocks, a stem for <paramref name="channels"/> input channels
    /// and <paramref name="classes"/> outputs. TorchVision .NET builds only the standard depths and keeps its block type
    /// internal, so the stages come from two standard builds (layers 1–3 of a resnet18, the three-block layer 4 of a
    /// resnet34: the same basic blocks) and are assembled as a Sequential of torchvision's child names with a new stem:
    /// the state-dict names (conv1.weight, layer4.2.bn2.running_var, fc.bias …) and the forward pass stay torchvision's.
    /// </summary>
    public static nn.Module<Tensor, Tensor> GrayResNet(int classes, int channels = 1)
    {
        var children = torchvision.models.resnet18(num_classes: classes).named_children()
            .ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        children["layer4"] = (nn.Module<Tensor, Tensor>)torchvision.models.resnet34(num_classes: classes).named_children().Single(c => c.name == "layer4").module;
        if (channels != 3)
        {
            children["conv1"] = nn.Conv2d(channels, 64, 7, stride: 2, padding: 3, bias: false);
        }
        string[] order = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc"];
        return nn.Sequential(order.Select(name => (name, children[name])).ToArray());
    }
}
