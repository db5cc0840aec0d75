using TorchSharp;
namespace Kem.Tests;

[TestClass]
public sealed class TorchLoadTests
{
    [TestMethod]
    public void TorchSharp_initialises_and_computes()
    {
        Assert.AreEqual("4", Microsoft.ML.Kem.Probe.Run());
    }
}
