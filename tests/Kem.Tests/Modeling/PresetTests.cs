using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;

namespace Kem.Tests.Modeling;

/// <summary>The spec's named configurations (MODEL-SPEC §1, "Configurations to ship") build at their stated sizes.</summary>
[TestClass]
public sealed class PresetTests
{
    private static readonly TaskSpec[] NyudTasks = [TaskSpec.Segmentation(40), TaskSpec.DepthTask()];

    [TestMethod]
    public void Gpu448_is_TinySwin_at_stride_16_with_about_27M_parameters()
    {
        var o = MultiTaskNetworkOptions.Gpu448(448, 576, NyudTasks);
        o.Validate();
        Assert.AreEqual(28 * 36, o.TokensPerTask, "the spec's 28×36 grid");
        torch.manual_seed(1);
        using var net = new MultiTaskNetwork(o);
        long parameters = net.parameters().Sum(p => p.numel());
        Assert.IsTrue(parameters is > 25_000_000 and < 32_000_000, $"the spec says ≈ 27M for Gpu448 with TinySwin; got {parameters:N0}");
        Assert.IsTrue(net.named_parameters().Any(p => p.name.StartsWith("encoders.") && p.name.EndsWith("relative_position_bias_table")),
            "task encoders are window blocks (the a8 block type)");
    }

    [TestMethod]
    public void Paper_is_TinySwin_on_MTFormers_grid()
    {
        var nyud = MultiTaskNetworkOptions.Paper(480, 640, NyudTasks);
        nyud.Validate();
        Assert.AreEqual(60 * 80, nyud.TokensPerTask, "NYUD: 60×80 = 4800 tokens");
        var pascal = MultiTaskNetworkOptions.Paper(512, 512, TaskSpec.Segmentation(21), TaskSpec.SaliencyTask());
        pascal.Validate();
        Assert.AreEqual(64 * 64, pascal.TokensPerTask, "PASCAL: 64×64 = 4096 tokens");
        Assert.AreEqual((256, 4, 20, 3), (nyud.Width, nyud.Heads, nyud.Interaction.MemorySlots, nyud.Interaction.TopK));
    }
}
