using TorchSharp;
using static TorchSharp.torch;
namespace Kem.Tests;

[TestClass]
public sealed class TorchLoadTests
{
    [TestMethod]
    public void TorchSharp_initialises_and_computes()
    {
        using var t = torch.ones(2, 2);
        Assert.AreEqual(4f, t.sum().item<float>());
        Assert.IsTrue(torch.TryInitializeDeviceType(DeviceType.CPU));
    }
}
