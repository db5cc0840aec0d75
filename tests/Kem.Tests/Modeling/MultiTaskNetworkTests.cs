using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class MultiTaskNetworkTests
{
    private static readonly TaskSpec[] ThreeTasks = { TaskSpec.Segmentation(5), TaskSpec.DepthTask(), TaskSpec.NormalsTask() };

    private static MultiTaskNetworkOptions Tiny(InteractionKind kind, BackboneKind backbone = BackboneKind.ConvStem) =>
        MultiTaskNetworkOptions.Tiny(ThreeTasks) with
        {
            ImageHeight = 32, ImageWidth = 48, Width = 32, Heads = 2, Backbone = backbone,
            Interaction = new InteractionOptions { Kind = kind, MemorySlots = 4, TopK = 3, EtfMode = EtfMode.TaskVertices },
        };

    [TestMethod]
    [DataRow(InteractionKind.None)]
    [DataRow(InteractionKind.CrossAttention)]
    [DataRow(InteractionKind.Kem)]
    [DataRow(InteractionKind.StableKem)]
    public void Forward_gives_one_map_per_task_at_input_resolution(InteractionKind kind)
    {
        torch.manual_seed(1);
        using var net = new MultiTaskNetwork(Tiny(kind));
        using var scope = torch.NewDisposeScope();
        var outputs = net.forward(torch.rand(2, 3, 32, 48) * 255);
        Assert.HasCount(3, outputs);
        CollectionAssert.AreEqual(new long[] { 2, 5, 32, 48 }, outputs[0].shape);
        CollectionAssert.AreEqual(new long[] { 2, 1, 32, 48 }, outputs[1].shape);
        CollectionAssert.AreEqual(new long[] { 2, 3, 32, 48 }, outputs[2].shape);
        Assert.IsTrue(outputs[1].min().item<float>() >= 0, "depth head ends in ReLU");
    }

    [TestMethod]
    [DataRow(InteractionKind.CrossAttention)]
    [DataRow(InteractionKind.StableKem)]
    public void Gradient_reaches_backbone_encoders_interaction_and_decoders(InteractionKind kind)
    {
        torch.manual_seed(2);
        using var net = new MultiTaskNetwork(Tiny(kind, BackboneKind.TinyViT));
        using var scope = torch.NewDisposeScope();
        var outputs = net.forward(torch.rand(2, 3, 32, 48) * 255);
        outputs.Select(o => o.square().mean()).Aggregate((a, b) => a + b).backward();
        var missing = net.named_parameters().Where(p => p.parameter.grad is null || p.parameter.grad.abs().sum().item<float>() == 0)
            .Select(p => p.name).ToList();
        Assert.IsEmpty(missing, "parameters without gradient: " + string.Join(", ", missing));
        foreach (var prefix in new[] { "backbone.", "encoders.", "interaction.", "decoders.", "heads." })
            Assert.IsTrue(net.named_parameters().Any(p => p.name.StartsWith(prefix)), $"no parameters under {prefix}");
    }

    [TestMethod]
    public void Hard_sharing_has_no_task_blocks_and_still_predicts()
    {
        var o = Tiny(InteractionKind.None) with { EncoderDepth = 0, DecoderDepth = 0 };
        using var net = new MultiTaskNetwork(o);
        Assert.IsFalse(net.named_parameters().Any(p => p.name.StartsWith("encoders.") || p.name.StartsWith("decoders.")));
        using var scope = torch.NewDisposeScope();
        CollectionAssert.AreEqual(new long[] { 1, 5, 32, 48 }, net.forward(torch.rand(1, 3, 32, 48))[0].shape);
    }

    [TestMethod]
    public void Freezing_the_backbone_removes_it_from_the_trainable_parameters()
    {
        using var free = new MultiTaskNetwork(Tiny(InteractionKind.Kem));
        using var frozen = new MultiTaskNetwork(Tiny(InteractionKind.Kem) with { FreezeBackbone = true });
        long backbone = free.named_parameters().Where(p => p.name.StartsWith("backbone.")).Sum(p => p.parameter.numel());
        Assert.IsGreaterThan(0L, backbone);
        Assert.AreEqual(free.TrainableParameterCount - backbone, frozen.TrainableParameterCount);
    }

    [TestMethod]
    public void Invalid_sizes_are_rejected_with_the_fix_in_the_message()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => new MultiTaskNetwork(Tiny(InteractionKind.Kem) with { ImageHeight = 30 }));
        StringAssert.Contains(e.Message, "multiples of TokenStride");
        var dup = Assert.ThrowsExactly<ArgumentException>(() => new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(TaskSpec.DepthTask(), TaskSpec.DepthTask())));
        StringAssert.Contains(dup.Message, "'Depth' is used twice");
        var heads = Assert.ThrowsExactly<ArgumentException>(() => new MultiTaskNetwork(Tiny(InteractionKind.Kem) with { Heads = 3 }));
        StringAssert.Contains(heads.Message, "multiple of Heads");
    }

    [TestMethod]
    public void Position_embedding_rows_are_distinct_and_bounded()
    {
        using var table = PositionEmbedding.SineCosine2D(3, 4, 8);
        CollectionAssert.AreEqual(new long[] { 12, 8 }, table.shape);
        Assert.IsLessThanOrEqualTo(1f, table.abs().max().item<float>() );
        using var distances = torch.cdist(table, table);
        using var offDiagonal = distances + torch.eye(12) * 100;
        Assert.IsGreaterThan(1e-3f, offDiagonal.min().item<float>());
    }
}
