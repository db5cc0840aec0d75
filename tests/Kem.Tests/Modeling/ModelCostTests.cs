using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class ModelCostTests
{
    /// <summary>
    /// Multiply-adds per image read off a module's real weights: every conv/linear weight (≥ 2-D) costs its size times the
    /// number of positions it is applied at (<paramref name="positionsOf"/> by parameter name), every attention (found by
    /// its query weight) 2·n²·d.
    /// </summary>
    private static long FromWeights(nn.Module module, Func<string, long> positionsOf) => module.named_parameters()
        .Where(p => p.parameter.dim() >= 2)
        .Sum(p => positionsOf(p.name) * p.parameter.numel()
                  + (p.name.EndsWith("attn.query.weight") ? 2 * positionsOf(p.name) * positionsOf(p.name) * p.parameter.shape[0] : 0));

    [TestMethod]
    [DataRow(BackboneKind.ConvStem, 32, 48)]
    [DataRow(BackboneKind.TinyViT, 32, 48)]
    [DataRow(BackboneKind.MultiScale, 32, 48)]
    [DataRow(BackboneKind.MultiScale, 40, 56)]   // odd grids: 10×14 → 5×7 → 3×4 (the merge pads 5×7 to 6×8)
    public void Backbone_closed_form_matches_the_real_weights(BackboneKind kind, int h, int w)
    {
        var o = MultiTaskNetworkOptions.Tiny(TaskSpec.DepthTask()) with
        {
            ImageHeight = h, ImageWidth = w, Width = 16, Heads = 2, MlpRatio = 2, BackboneDepth = 2, Backbone = kind,
            MultiScale = new MultiScaleOptions { FirstStride = 4, FirstWidth = 8, BlocksPerScale = 1 },
        };
        using var backbone = new Backbone("backbone", o);
        long Positions(int stride) => (h + stride - 1) / stride * ((w + stride - 1) / stride);   // ⌈H/s⌉·⌈W/s⌉: padded merges
        long PositionsOf(string name) => name switch
        {
            _ when name.StartsWith("stem.conv1") => Positions(2),
            _ when name.StartsWith("stem.conv2") => Positions(4),
            _ when name.StartsWith("stem.scales.patchEmbed") || name.StartsWith("stem.scales.stages.0.") => Positions(4),
            _ when name.StartsWith("stem.scales.stages.1.") || name.StartsWith("stem.scales.merges.0.") => Positions(8),
            _ when name.StartsWith("stem.scales.stages.2.") || name.StartsWith("stem.scales.merges.1.") => Positions(16),
            _ => Positions(8),                                   // conv3 / patch embedding / fusion / blocks: the token grid
        };
        Assert.AreEqual(FromWeights(backbone, PositionsOf), ModelCost.Backbone(o));
    }

    [TestMethod]
    public void Block_and_head_closed_forms_match_the_real_weights()
    {
        using var block = new TransformerBlock("b", 16, 2, 3);
        Assert.AreEqual(FromWeights(block, _ => 12), ModelCost.TransformerBlock(12, 16, 3));
        foreach (var task in new[] { TaskSpec.Segmentation(5), TaskSpec.DepthTask(), TaskSpec.NormalsTask() })
        {
            using var head = new DenseHead("h", task, 16, 3, 4, 24, 32);
            Assert.AreEqual(FromWeights(head, name => name.StartsWith("afterUpsample") ? 4 * 12 : 12), ModelCost.DenseHead(task, 16, 3, 4), task.Name);
        }
    }
}
