using Kem.Tests.Data;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class SwinWeightsTests
{
    private static readonly MultiScaleOptions TestSwin = MultiScaleOptions.TinySwin with { FirstWidth = 8, Heads = [1, 2, 2, 4], Window = 2 };

    private static MultiTaskNetwork Build(int seed)
    {
        torch.manual_seed(seed);
        return new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(TaskSpec.Segmentation(3), TaskSpec.DepthTask()) with
        {
            Backbone = BackboneKind.TinySwin, Swin = TestSwin, Width = 16, Heads = 2, BackboneDepth = 2, EncoderDepth = 1, DecoderDepth = 1,
            Interaction = new InteractionOptions { Kind = InteractionKind.None },
        });
    }

    private static SafeTensor Random(string name, long[] shape, Random rng)
    {
        var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1);
        return SafeTensor.FromFloat32(name, shape, values);
    }

    /// <summary>
    /// A checkpoint in the official Swin names (microsoft/Swin-Transformer) for <paramref name="net"/>'s a1–a5, written from
    /// our layout by hand: fused qkv, <c>layers.i.downsample</c> = the merging at the end of stage i, the classifier's
    /// <c>norm</c> and <c>head</c>, and the fixed buffers <c>relative_position_index</c> / <c>attn_mask</c>.
    /// </summary>
    private static List<SafeTensor> OfficialCheckpoint(MultiTaskNetwork net)
    {
        var rng = new Random(7);
        var tensors = new List<SafeTensor>();
        foreach (var (name, p) in net.named_parameters())
        {
            const string Scales = "backbone.stem.scales.";
            if (!name.StartsWith(Scales) || name.Contains("outputNorms") || name.Contains("attn.keyValue")) continue;
            string ours = name[Scales.Length..];
            string official = ours
                .Replace("patchEmbed.", "patch_embed.proj.").Replace("embedNorm.", "patch_embed.norm.")
                .Replace("stages.", "layers.").Replace("merges.", "layers.").Replace("reduction", "downsample.reduction")
                .Replace("attn.query.", "attn.qkv.").Replace("attn.output.", "attn.proj.").Replace("relative_position_bias_table", "attn.relative_position_bias_table")
                .Replace(".fc1.", ".mlp.fc1.").Replace(".fc2.", ".mlp.fc2.");
            if (ours.StartsWith("merges.") && ours.Contains(".norm.")) official = official.Replace(".norm.", ".downsample.norm.");
            long[] shape = ours.Contains("attn.query.") ? [3 * p.shape[0], .. p.shape[1..]] : p.shape;
            tensors.Add(Random(official, shape, rng));
        }
        tensors.Add(Random("norm.weight", [64], rng));
        tensors.Add(Random("norm.bias", [64], rng));
        tensors.Add(Random("head.weight", [10, 64], rng));
        tensors.Add(SafeTensor.FromInt64("layers.0.blocks.0.attn.relative_position_index", [4, 4], new long[16]));
        tensors.Add(Random("layers.0.blocks.1.attn_mask", [64, 4, 4], rng));
        return tensors;
    }

    private static Tensor Official(List<SafeTensor> checkpoint, string name)
    {
        var t = checkpoint.Single(x => x.Name == name);
        return torch.tensor(t.ToFloat32(), t.Shape);
    }

    private static bool Same(Tensor expected, Tensor actual) => expected.shape.SequenceEqual(actual.shape) && expected.eq(actual).all().item<bool>();

    [TestMethod]
    public void Official_swin_names_load_into_TinySwin_and_freeze_only_a1_to_a5()
    {
        using var folder = new TempFolder();
        using var net = Build(1);
        var checkpoint = OfficialCheckpoint(net);
        string path = folder.File("swin.safetensors");
        SafeTensors.Write(path, checkpoint);
        var log = new List<string>();

        var report = BackboneWeights.Load(net, path, freeze: true, log: log.Add);

        Assert.IsEmpty(report.Missing, string.Join(", ", report.Missing));
        CollectionAssert.AreEqual(new[] { "head.weight" }, report.Unexpected.ToArray());
        Assert.IsTrue(log.Any(l => l.Contains("2 fixed buffers skipped")), string.Join("\n", log));
        using var scope = torch.NewDisposeScope();
        var state = net.state_dict();
        var qkv = Official(checkpoint, "layers.3.blocks.1.attn.qkv.weight");                         // 3·64 × 64
        Assert.IsTrue(Same(qkv.narrow(0, 0, 64), state["backbone.stem.scales.stages.3.blocks.1.attn.query.weight"]), "rows [0, d): queries");
        Assert.IsTrue(Same(qkv.narrow(0, 64, 128), state["backbone.stem.scales.stages.3.blocks.1.attn.keyValue.weight"]), "rows [d, 3d): keys, values");
        Assert.IsTrue(Same(Official(checkpoint, "layers.2.blocks.0.attn.relative_position_bias_table"), state["backbone.stem.scales.stages.2.blocks.0.relative_position_bias_table"]));
        Assert.IsTrue(Same(Official(checkpoint, "norm.weight"), state["backbone.stem.scales.outputNorms.2.weight"]), "norm → last a6 LN");

        foreach (var (name, p) in net.named_parameters())
        {
            bool a1to5 = name.StartsWith("backbone.stem.scales.") && !name.StartsWith("backbone.stem.scales.outputNorms.");
            Assert.AreEqual(!a1to5, p.requires_grad, name);
        }
    }

    [TestMethod]
    public void Official_downsample_of_stage_i_is_our_merge_into_stage_i_plus_1_in_the_official_concat_order()
    {
        using var folder = new TempFolder();
        using var net = Build(2);
        var checkpoint = OfficialCheckpoint(net);
        string path = folder.File("swin.safetensors");
        SafeTensors.Write(path, checkpoint);
        BackboneWeights.Load(net, path);
        var merge = (PatchMerging)net.named_modules().Single(m => m.name == "backbone.stem.scales.merges.0").module;

        using var scope = torch.NewDisposeScope();
        var x = torch.randn(2, 16 * 16, 8);                                    // stage 1 tokens, 16×16 grid
        // Official PatchMerging: x0 = x[0::2, 0::2], x1 = x[1::2, 0::2], x2 = x[0::2, 1::2], x3 = x[1::2, 1::2] → cat → LN → reduction.
        var v = x.reshape(2, 8, 2, 8, 2, 8);                                   // B×r/2×dr×c/2×dc×C
        Tensor Part(int dr, int dc) => v.select(2, dr).select(3, dc);          // B×8×8×C
        var merged = torch.cat([Part(0, 0), Part(1, 0), Part(0, 1), Part(1, 1)], -1).reshape(2, 64, 32);
        var normed = nn.functional.layer_norm(merged, [32], Official(checkpoint, "layers.0.downsample.norm.weight"), Official(checkpoint, "layers.0.downsample.norm.bias"));
        var expected = nn.functional.linear(normed, Official(checkpoint, "layers.0.downsample.reduction.weight"));
        var actual = merge.forward(x);
        Assert.IsTrue(expected.allclose(actual, rtol: 1e-4, atol: 1e-5), $"max |Δ| = {(expected - actual).abs().max().item<float>()}");
    }

    [TestMethod]
    public void A_swin_checkpoint_missing_a_block_tensor_is_logged_and_cannot_be_frozen()
    {
        using var folder = new TempFolder();
        using var net = Build(3);
        var checkpoint = OfficialCheckpoint(net).Where(t => t.Name != "layers.2.blocks.1.mlp.fc1.weight").ToList();
        string path = folder.File("swin.safetensors");
        SafeTensors.Write(path, checkpoint);

        var refused = Assert.ThrowsExactly<InvalidOperationException>(() => BackboneWeights.Load(net, path, freeze: true));
        StringAssert.Contains(refused.Message, "stem.scales.stages.2.blocks.1.fc1.weight");
        var log = new List<string>();
        var report = BackboneWeights.Load(net, path, log: log.Add);
        CollectionAssert.AreEqual(new[] { "stem.scales.stages.2.blocks.1.fc1.weight" }, report.Missing.ToArray());
        Assert.IsTrue(log.Any(l => l.Contains("missing (kept at their initial values): stem.scales.stages.2.blocks.1.fc1.weight")));
        Assert.IsTrue(net.named_parameters().All(p => p.parameter.requires_grad), "nothing frozen");
    }
}
