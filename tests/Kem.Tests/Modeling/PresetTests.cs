using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;

namespace Kem.Tests.Modeling;

/// <summary>The spec's named configurations (MODEL-SPEC §1, "Configurations to ship") build at their stated sizes.</summary>
[TestClass]
public sealed class PresetTests
{
    private static readonly TaskSpec[] NyudTasks = [TaskSpec.Segmentation(40), TaskSpec.DepthTask()];
    // Dev at 240×320 with segmentation (40 classes) + depth; the count does not depend on the image size.
    private const long DevParameters = 11_362_638;

    public TestContext TestContext { get; set; } = null!;

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
        AssertGlobalTaskBlocks(o, net);
    }

    [TestMethod]
    public void Dev_is_TinySwin_at_stride_8_on_the_specs_grids()
    {
        var o = MultiTaskNetworkOptions.Dev(240, 320, NyudTasks);
        o.Validate();
        Assert.AreEqual((BackboneKind.TinySwin, 8, 128, 4, 20, 3), (o.Backbone, o.TokenStride, o.Width, o.Heads, o.Interaction.MemorySlots, o.Interaction.TopK));
        Assert.AreEqual(30 * 40, o.TokensPerTask, "NYUD: the spec's 30×40 = 1200 tokens");
        var pascal = MultiTaskNetworkOptions.Dev(256, 256, TaskSpec.Segmentation(21), TaskSpec.SaliencyTask());
        pascal.Validate();
        Assert.AreEqual(32 * 32, pascal.TokensPerTask, "PASCAL: 32×32 = 1024 tokens");

        torch.manual_seed(1);
        using var net = new MultiTaskNetwork(o);
        var scales = (MultiScaleBackbone)net.named_modules().Single(m => m.name == "backbone.stem.scales").module;
        CollectionAssert.AreEqual(new[] { (60, 80), (30, 40), (15, 20), (8, 10) }, scales.Grids.ToArray(), "official Swin grids: 15×20 padded to 16×20 before the last merge");
        long parameters = net.parameters().Sum(p => p.numel());
        TestContext.WriteLine($"Dev at 240×320, segmentation (40) + depth: {parameters:N0} parameters");
        Assert.AreEqual(DevParameters, parameters, "TinySwin (a1–a5) + a6/a7 + window neck + 2×(2+2) global blocks of d 128 + KEM + heads");
        AssertGlobalTaskBlocks(o, net);

        // One forward at the real size (about 1 s on one CPU thread): full-size maps through the padded merge and the 8×10 → 30×40 resize.
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        net.eval();
        var outputs = net.forward(torch.rand(1, 3, 240, 320) * 255);
        CollectionAssert.AreEqual(new long[] { 1, 40, 240, 320 }, outputs[0].shape);
        CollectionAssert.AreEqual(new long[] { 1, 1, 240, 320 }, outputs[1].shape);
        Assert.IsTrue(outputs.All(t => t.isfinite().all().item<bool>()), "finite outputs");
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
        Assert.AreEqual(BlockAttention.Window, nyud.TaskBlocks, "MODEL-SPEC §15.9: window task blocks at paper size (the a8 block type)");
    }

    // MODEL-SPEC §15.9: task encoders/decoders are `Global` at Tiny/Small/Dev/Gpu448 sizes (≤ 1200 tokens); the neck stays window.
    private static void AssertGlobalTaskBlocks(MultiTaskNetworkOptions o, MultiTaskNetwork net)
    {
        Assert.AreEqual(BlockAttention.Global, o.TaskBlocks, "global task blocks at ≤ 1200 tokens");
        var names = net.named_parameters().Select(p => p.name).ToArray();
        Assert.IsFalse(names.Any(n => (n.StartsWith("encoders.") || n.StartsWith("decoders.")) && n.EndsWith("relative_position_bias_table")),
            "no window attention in the task encoders/decoders");
        Assert.IsTrue(names.Any(n => n.StartsWith("backbone.blocks.") && n.EndsWith("relative_position_bias_table")), "the neck a8 is window blocks");
    }
}
