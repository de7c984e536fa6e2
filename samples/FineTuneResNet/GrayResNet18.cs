using TorchSharp;
using static TorchSharp.torch;

/// <summary>TorchVision's ResNet-18 with another input-channel count and class count, under torchvision's names.</summary>
internal static class GrayResNet18
{
    /// <summary>
    /// Builds a TorchVision ResNet-18 and reassembles its children in forward order, replacing the stem convolution
    /// (1 input channel) and the classifier (<paramref name="classes"/> outputs). In PyTorch one would assign
    /// <c>model.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)</c>; TorchSharp's ResNet holds its layers in read-only
    /// fields, and a Sequential of the same names gives the same state-dict names and the same forward pass.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Create(int classes)
    {
        var resnet = torchvision.models.resnet18(num_classes: classes);
        var children = resnet.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        children["conv1"] = nn.Conv2d(1, 64, 7, stride: 2, padding: 3, bias: false);
        string[] order = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc"];
        return nn.Sequential(order.Select(name => (name, children[name])).ToArray());
    }
}
