using Kem.Tests.Data;
using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class BackboneWeightsTests
{
    private const int D = 32;

    private static MultiTaskNetworkOptions Options(BackboneKind kind) =>
        MultiTaskNetworkOptions.Tiny(TaskSpec.Segmentation(3), TaskSpec.DepthTask()) with
        {
            ImageHeight = 32, ImageWidth = 32, Width = D, Heads = 2, Backbone = kind, BackboneDepth = 1, EncoderDepth = 1, DecoderDepth = 1,
            Interaction = new InteractionOptions { Kind = InteractionKind.None },
        };

    private static SafeTensor Random(string name, long[] shape, int seed)
    {
        var rng = new Random(seed);
        var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1);
        return SafeTensor.FromFloat32(name, shape, values);
    }

    /// <summary>A TinyViT backbone checkpoint in timm's ViT names (fused qkv, mlp.fc1, patch_embed.proj) plus keys we have no place for.</summary>
    private static List<SafeTensor> TimmCheckpoint(long fc1Rows = 4 * D) =>
    [
        Random("patch_embed.proj.weight", [D, 3, 8, 8], 1), Random("patch_embed.proj.bias", [D], 2),
        Random("blocks.0.norm1.weight", [D], 3), Random("blocks.0.norm1.bias", [D], 4),
        Random("blocks.0.attn.qkv.weight", [3 * D, D], 5), Random("blocks.0.attn.qkv.bias", [3 * D], 6),
        Random("blocks.0.attn.proj.weight", [D, D], 7), Random("blocks.0.attn.proj.bias", [D], 8),
        Random("blocks.0.norm2.weight", [D], 9), Random("blocks.0.norm2.bias", [D], 10),
        Random("blocks.0.mlp.fc1.weight", [fc1Rows, D], 11), Random("blocks.0.mlp.fc1.bias", [4 * D], 12),
        Random("blocks.0.mlp.fc2.weight", [D, 4 * D], 13), Random("blocks.0.mlp.fc2.bias", [D], 14),
        Random("norm.weight", [D], 15), Random("norm.bias", [D], 16),
        Random("pos_embed", [1, 17, D], 17), Random("cls_token", [1, 1, D], 18), Random("head.weight", [10, D], 19),
    ];

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static float[] Values(MultiTaskNetwork net, string name) => net.state_dict()[name].detach().cpu().data<float>().ToArray();

    [TestMethod]
    public void Timm_named_checkpoint_loads_into_tinyvit_splitting_qkv_and_freezes_only_the_backbone()
    {
        using var folder = new TempFolder();
        string path = folder.File("vit.safetensors");
        var checkpoint = TimmCheckpoint();
        SafeTensors.Write(path, checkpoint);
        var log = new List<string>();
        torch.manual_seed(3);
        using var net = new MultiTaskNetwork(Options(BackboneKind.TinyViT));

        var report = BackboneWeights.Load(net, path, freeze: true, log: log.Add);

        var qkv = checkpoint.Single(t => t.Name == "blocks.0.attn.qkv.weight").ToFloat32();
        CollectionAssert.AreEqual(qkv[..(D * D)], Values(net, "backbone.blocks.0.attn.query.weight"), "rows [0, d) are the queries");
        CollectionAssert.AreEqual(qkv[(D * D)..], Values(net, "backbone.blocks.0.attn.keyValue.weight"), "rows [d, 3d) are keys then values");
        CollectionAssert.AreEqual(checkpoint.Single(t => t.Name == "patch_embed.proj.weight").ToFloat32(), Values(net, "backbone.stem.weight"));
        CollectionAssert.AreEqual(checkpoint.Single(t => t.Name == "blocks.0.mlp.fc2.bias").ToFloat32(), Values(net, "backbone.blocks.0.fc2.bias"));
        CollectionAssert.AreEquivalent(new[] { "cls_token", "head.weight", "pos_embed" }, report.Unexpected.ToArray());
        Assert.IsEmpty(report.Missing);
        Assert.IsTrue(report.Frozen);
        Assert.IsTrue(log.Any(l => l.Contains("unexpected (ignored): cls_token, head.weight, pos_embed")), string.Join("\n", log));
        foreach (var (name, p) in net.named_parameters())
            Assert.AreEqual(!name.StartsWith("backbone."), p.requires_grad, name);
    }

    [TestMethod]
    public void A_shape_mismatch_names_the_key_and_both_shapes()
    {
        using var folder = new TempFolder();
        string path = folder.File("wrong.safetensors");
        SafeTensors.Write(path, TimmCheckpoint(fc1Rows: 2 * D));
        using var net = new MultiTaskNetwork(Options(BackboneKind.TinyViT));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => BackboneWeights.Load(net, path));
        StringAssert.Contains(e.Message, "'blocks.0.mlp.fc1.weight' has shape [64, 32]");
        StringAssert.Contains(e.Message, "backbone.blocks.0.fc1.weight is [128, 32]");
    }

    [TestMethod]
    public void Freezing_is_refused_when_the_file_does_not_cover_every_backbone_parameter()
    {
        using var folder = new TempFolder();
        string path = folder.File("partial.safetensors");
        SafeTensors.Write(path, [Random("norm.weight", [D], 1), Random("unrelated.thing", [2], 2)]);
        using var net = new MultiTaskNetwork(Options(BackboneKind.TinyViT));

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => BackboneWeights.Load(net, path, freeze: true));
        StringAssert.Contains(e.Message, "Refusing to freeze");
        Assert.IsTrue(net.named_parameters().All(p => p.parameter.requires_grad), "nothing was frozen");

        var report = BackboneWeights.Load(net, path, freeze: false);
        CollectionAssert.AreEqual(new[] { "norm.weight" }, report.Loaded.ToArray());
        CollectionAssert.Contains(report.Missing.ToArray(), "stem.weight");
        CollectionAssert.AreEqual(new[] { "unrelated.thing" }, report.Unexpected.ToArray());
    }

    [TestMethod]
    public void Saved_conv_stem_backbone_loads_back_with_batchnorm_statistics()
    {
        using var folder = new TempFolder();
        string path = folder.File("stem.safetensors");
        torch.manual_seed(1);
        using var source = new MultiTaskNetwork(Options(BackboneKind.ConvStem));
        using (torch.no_grad()) source.state_dict()["backbone.stem.bn1.running_mean"].fill_(0.75f);
        BackboneWeights.Save(source, path);
        torch.manual_seed(2);
        using var target = new MultiTaskNetwork(Options(BackboneKind.ConvStem));

        var report = BackboneWeights.Load(target, path, freeze: true);
        Assert.IsEmpty(report.Missing);
        Assert.IsEmpty(report.Unexpected);
        foreach (var (name, tensor) in source.state_dict().Where(kv => kv.Key.StartsWith("backbone.")))
            Assert.IsTrue(Same(tensor, target.state_dict()[name]), name);
        using var fresh = new MultiTaskNetwork(Options(BackboneKind.ConvStem));
        Assert.IsFalse(Same(source.state_dict()["backbone.stem.conv1.weight"], fresh.state_dict()["backbone.stem.conv1.weight"]), "the check can fail");
    }

    [TestMethod]
    public void Trainer_loads_and_keeps_a_frozen_backbone_and_refuses_freezing_without_weights()
    {
        var ml = new MLContext(seed: 1);
        var tasks = new[] { new TaskColumn(TaskSpec.Segmentation(TinyData.Classes)), new TaskColumn(TinyData.Depth) };
        MultiTaskKemTrainer.Options Options(string? weights) => new()
        {
            Tasks = tasks, Backbone = BackboneKind.TinyViT, Width = D, Heads = 2, BackboneDepth = 1, EncoderDepth = 1, DecoderDepth = 1,
            Interaction = new InteractionOptions { Kind = InteractionKind.None }, BackboneWeightsPath = weights, FreezeBackbone = true,
            Training = new TrainingOptions { Epochs = 1, BatchSize = 4, WarmupSteps = 0, Device = ComputeDevice.Cpu },
        };
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.MultiTask().Trainers.Kem(Options(null)));
        StringAssert.Contains(e.Message, "needs BackboneWeightsPath");

        using var folder = new TempFolder();
        string path = folder.File("vit.safetensors");
        var checkpoint = TimmCheckpoint();
        SafeTensors.Write(path, checkpoint);
        var data = TinyData.Make(TinyData.SegDepth, 8, 32, 32, seed: 5);
        var view = ml.Data.LoadFromEnumerable(Enumerable.Range(0, data.Count).Select(i => new Row
        {
            Image = data.Image(i).ToArray(), Segmentation = data.Label(0, i).ToArray(), Depth = data.Label(1, i).ToArray(),
        }));
        var model = ml.MultiTask().Trainers.Kem(Options(path)).Fit(view);
        CollectionAssert.AreEqual(checkpoint.Single(t => t.Name == "blocks.0.attn.proj.weight").ToFloat32(), Values((MultiTaskNetwork)model.Network, "backbone.blocks.0.attn.output.weight"),
            "a frozen backbone keeps the loaded weights through training");
    }

    public sealed class Row
    {
        [VectorType(3, 32, 32)] public float[] Image { get; set; } = [];
        [VectorType(1, 32, 32)] public float[] Segmentation { get; set; } = [];
        [VectorType(1, 32, 32)] public float[] Depth { get; set; } = [];
    }
}
