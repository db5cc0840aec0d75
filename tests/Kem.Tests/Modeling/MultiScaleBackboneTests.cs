using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class MultiScaleBackboneTests
{
    private static readonly MultiScaleOptions Small = new() { FirstStride = 4, Scales = 3, FirstWidth = 8, BlocksPerScale = 1 };

    [TestMethod]
    public void Three_scales_have_doubling_strides_and_widths()
    {
        torch.manual_seed(1);
        using var backbone = new MultiScaleBackbone("b", Small, 32, 48, headWidth: 8, mlpRatio: 2);
        using var scope = torch.NewDisposeScope();
        var maps = backbone.forward(torch.randn(2, 3, 32, 48));
        Assert.HasCount(3, maps);
        CollectionAssert.AreEqual(new long[] { 2, 8, 8, 12 }, maps[0].shape);
        CollectionAssert.AreEqual(new long[] { 2, 16, 4, 6 }, maps[1].shape);
        CollectionAssert.AreEqual(new long[] { 2, 32, 2, 3 }, maps[2].shape);
        Assert.AreEqual((2, 3), backbone.Grids[2]);
    }

    [TestMethod]
    public void Sequential_TinySwin_preset_is_the_spec_section_5_backbone_four_scales_at_strides_4_to_32_with_64_to_512_channels()
    {
        var spec = MultiScaleOptions.SequentialTinySwin;
        Assert.AreEqual(4, spec.Scales);
        CollectionAssert.AreEqual(new[] { 4, 8, 16, 32 }, Enumerable.Range(0, 4).Select(spec.StrideAt).ToArray());
        CollectionAssert.AreEqual(new[] { 64, 128, 256, 512 }, Enumerable.Range(0, 4).Select(spec.WidthAt).ToArray());
        CollectionAssert.AreEqual(new[] { 0, 1, 2, 3 }, spec.FusedScales.ToArray(), "the sequential design refines every scale");
        Assert.AreEqual(spec with { FirstFusedScale = 1 }, MultiScaleOptions.TinySwin, "the §1 TinySwin stages, nothing else changed");

        torch.manual_seed(4);
        using var backbone = new MultiScaleBackbone("b", spec, 32, 64, headWidth: 32, mlpRatio: 2);
        using var scope = torch.NewDisposeScope();
        var image = torch.randn(2, 3, 32, 64);
        var maps = backbone.forward(image);
        Assert.HasCount(4, maps);
        CollectionAssert.AreEqual(new long[] { 2, 64, 8, 16 }, maps[0].shape, "stride 4");
        CollectionAssert.AreEqual(new long[] { 2, 128, 4, 8 }, maps[1].shape, "stride 8");
        CollectionAssert.AreEqual(new long[] { 2, 256, 2, 4 }, maps[2].shape, "stride 16");
        CollectionAssert.AreEqual(new long[] { 2, 512, 1, 2 }, maps[3].shape, "stride 32");
        maps.Select(m => m.square().mean()).Aggregate((a, b) => a + b).backward();
        foreach (var prefix in new[] { "patchEmbed.", "stages.0.", "stages.3.", "merges.2.", "outputNorms.0.", "outputNorms.3." })
            Assert.IsTrue(backbone.named_parameters().Any(p => p.name.StartsWith(prefix) && p.parameter.grad is { } g && g.abs().sum().item<float>() > 0),
                $"no gradient under {prefix}");
    }

    [TestMethod]
    public void Sequential_design_uses_the_TinySwin_stages_when_the_backbone_is_TinySwin_and_MultiScale_otherwise()
    {
        var o = SequentialCrossAttentionNetworkTests.Tiny(TaskSpec.Segmentation(3), TaskSpec.DepthTask());
        Assert.AreEqual(o.MultiScale, o.SequentialEncoder, "ConvStem (any non-Swin kind): the MultiScale option");
        Assert.AreEqual(MultiScaleOptions.SequentialTinySwin, (o with { Backbone = BackboneKind.TinySwin }).SequentialEncoder);
        Assert.AreEqual(MultiScaleOptions.SwinT with { FirstFusedScale = 0 }, (o with { Backbone = BackboneKind.SwinT }).SequentialEncoder);
        var small = MultiScaleOptions.TinySwin with { Window = 2 };
        Assert.AreEqual(small with { FirstFusedScale = 0 }, (o with { Backbone = BackboneKind.TinySwin, Swin = small }).SequentialEncoder, "Swin overrides the preset");

        torch.manual_seed(5);
        using var net = MultiTaskModel.Create(o with { Backbone = BackboneKind.TinySwin, Sequential = new SequentialAttentionOptions { HeadBlocks = 0 } });
        var widths = Enumerable.Range(0, 4).Select(s => net.named_parameters().Single(p => p.name == $"backbone.outputNorms.{s}.weight").parameter.shape[0]).ToArray();
        CollectionAssert.AreEqual(new long[] { 64, 128, 256, 512 }, widths);
        Assert.IsTrue(net.named_parameters().Any(p => p.name.StartsWith("crossTask.3.")), "CTAM at the fourth scale");
        Assert.IsTrue(net.named_parameters().Any(p => p.name.StartsWith("backbone.stages.0.") && p.name.Contains("relative_position_bias_table")), "window (Swin) blocks");
    }

    [TestMethod]
    public void Patch_merging_mixes_only_the_2x2_neighbours_of_each_output_token()
    {
        torch.manual_seed(2);
        using var merge = new PatchMerging("m", 4, 6, 8);
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(1, 24, 8);
        var y = merge.forward(x);
        CollectionAssert.AreEqual(new long[] { 1, 6, 16 }, y.shape);
        var changed = x.clone();
        changed[0, 1 * 6 + 3] += 5f;                               // token (row 1, col 3) → output token (0, 1)
        var diff = (merge.forward(changed) - y).abs().sum(-1)[0];  // 6 output tokens
        var moved = Enumerable.Range(0, 6).Where(i => diff[i].item<float>() > 1e-6f).ToArray();
        CollectionAssert.AreEqual(new[] { 1 }, moved);
    }

    [TestMethod]
    public void MultiScale_backbone_kind_feeds_the_shared_encoder_network_and_trains_every_scale()
    {
        torch.manual_seed(3);
        var o = MultiTaskNetworkOptions.Tiny(TaskSpec.Segmentation(3), TaskSpec.DepthTask()) with
        {
            ImageHeight = 32, ImageWidth = 32, Width = 16, Heads = 2, Backbone = BackboneKind.MultiScale, MultiScale = Small,
            EncoderDepth = 1, DecoderDepth = 1, Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 2 },
        };
        using var net = new MultiTaskNetwork(o);
        using var scope = torch.NewDisposeScope();
        var outputs = net.forward(torch.rand(2, 3, 32, 32) * 255);
        CollectionAssert.AreEqual(new long[] { 2, 3, 32, 32 }, outputs[0].shape);
        CollectionAssert.AreEqual(new long[] { 2, 1, 32, 32 }, outputs[1].shape);
        outputs.Select(t => t.square().mean()).Aggregate((a, b) => a + b).backward();
        foreach (var prefix in new[] { "backbone.stem.scales.stages.0.", "backbone.stem.scales.stages.2.", "backbone.stem.scales.merges.1.", "backbone.stem.fuse." })
            Assert.IsTrue(net.named_parameters().Any(p => p.name.StartsWith(prefix) && p.parameter.grad is { } g && g.abs().sum().item<float>() > 0),
                $"no gradient under {prefix}");
    }

    [TestMethod]
    public void Sizes_the_coarsest_scale_cannot_tile_get_padded_grids_and_fewer_than_3_scales_are_rejected()
    {
        // 40×32, strides 4/8/16: 10×8 → 5×4 → 3×2 (the merge into the stride-16 scale pads the 5-row grid with a zero row).
        torch.manual_seed(4);
        using var backbone = new MultiScaleBackbone("b", Small, 40, 32, headWidth: 8, mlpRatio: 2);
        CollectionAssert.AreEqual(new[] { (10, 8), (5, 4), (3, 2) }, backbone.Grids.ToArray());
        using var scope = torch.NewDisposeScope();
        CollectionAssert.AreEqual(new long[] { 1, 32, 3, 2 }, backbone.forward(torch.randn(1, 3, 40, 32))[2].shape);
        var o = MultiTaskNetworkOptions.Tiny(TaskSpec.DepthTask()) with
        {
            ImageHeight = 32, ImageWidth = 32, Backbone = BackboneKind.MultiScale, MultiScale = new MultiScaleOptions { Scales = 2 },
        };
        var two = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => o.Validate());
        StringAssert.Contains(two.Message, "Scales must be 3, 4 or 5");
    }
}
