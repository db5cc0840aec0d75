using Kem.Tests.Data;
using Kem.Tests.Interaction;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Visualization;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Visualization;

[TestClass]
public sealed class SlotVisualizerTests
{
    private const int Size = 32, Slots = 4, TopK = 3;   // 4×4 grid at stride 8, n = 16, N = 32

    private static MultiTaskNetwork Network(InteractionOptions? interaction = null)
    {
        manual_seed(3);
        return new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(TinyData.SegDepth) with
        {
            ImageHeight = Size, ImageWidth = Size, Width = 32, Heads = 2,
            Interaction = interaction ?? new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = Slots, TopK = TopK },
        });
    }

    private static Tensor Images(int count) => (TensorAssert.Randn(11, count, 3, Size, Size) * 60 + 128).clamp(0, 255);

    [TestMethod]
    [DataRow(InteractionKind.Kem)]
    [DataRow(InteractionKind.StableKem)]
    public void Picks_are_the_top_k_of_the_trace_retrieve_weights_mapped_to_task_and_patch(InteractionKind kind)
    {
        using var network = Network(new InteractionOptions { Kind = kind, MemorySlots = Slots, TopK = TopK });
        using var scope = NewDisposeScope();
        var images = Images(2);
        var selections = SlotVisualizer.Select(network, images);

        using var noGrad = no_grad();
        var weights = ((KnowledgeExtraction)network.Interaction).Trace(network.EncodeTasks(images)).RetrieveWeights;   // B×h×m×N
        var (values, indices) = weights.topk(TopK, dim: -1);
        Assert.HasCount(2, selections);
        for (int b = 0; b < 2; b++)
        {
            var selection = selections[b];
            Assert.AreEqual((Slots, 2, TopK, 4, 4, 8), (selection.Slots, selection.Heads, selection.TopK, selection.GridRows, selection.GridCols, selection.Stride));
            CollectionAssert.AreEqual(new[] { "Segmentation", "Depth" }, selection.TaskNames.ToArray());
            Assert.HasCount(Slots * 2 * TopK, selection.Picks);
            for (int slot = 0; slot < Slots; slot++)
                for (int head = 0; head < 2; head++)
                {
                    var picks = selection.For(slot, head).ToArray();
                    var expected = indices[b, head, slot].data<long>().ToArray();
                    CollectionAssert.AreEqual(expected, picks.Select(p => (long)p.Token).ToArray(), $"image {b}, slot {slot}, head {head}");
                    for (int r = 0; r < TopK; r++)
                    {
                        var p = picks[r];
                        Assert.AreEqual((slot, head, r), (p.Slot, p.Head, p.Rank));
                        Assert.AreEqual(values[b, head, slot, r].item<float>(), p.Weight, 1e-6f);
                        Assert.IsGreaterThan(0f, p.Weight, "picked tokens carry retrieve weight");
                        Assert.AreEqual((p.Token / 16, p.Token % 16 / 4, p.Token % 4), (p.Task, p.Row, p.Col), "token → (task, row, col)");
                    }
                    Assert.AreEqual(TopK, weights[b, head, slot].ne(0).sum().item<long>(), "the picks are all the non-zero weights");
                }
        }
        // One image through the span overload gives the batch's first selection (weights up to batching round-off).
        var pixels = images[0].contiguous().data<float>().ToArray();
        var single = SlotVisualizer.Select(network, pixels).Picks;
        CollectionAssert.AreEqual(selections[0].Picks.Select(p => p with { Weight = 0 }).ToArray(), single.Select(p => p with { Weight = 0 }).ToArray());
        for (int i = 0; i < single.Count; i++) Assert.AreEqual(selections[0].Picks[i].Weight, single[i].Weight, 1e-6f);
    }

    [TestMethod]
    public void Hand_set_weights_map_to_known_tasks_rows_and_columns()
    {
        using var scope = NewDisposeScope();
        // 2 tasks on a 2×3 grid (n = 6, N = 12), 1 head, 2 slots, k = 2
        var weights = zeros(1, 1, 2, 12);
        weights[0, 0, 0, 4] = tensor(0.5f);    // task 0, cell 4 → row 1, col 1
        weights[0, 0, 0, 9] = tensor(0.3f);    // task 1, cell 3 → row 1, col 0
        weights[0, 0, 1, 2] = tensor(0.2f);    // task 0, cell 2 → row 0, col 2
        weights[0, 0, 1, 11] = tensor(0.6f);   // task 1, cell 5 → row 1, col 2
        var selection = SlotVisualizer.FromRetrieveWeights(weights, 2, ["a", "b"], 2, 3, 8)[0];
        CollectionAssert.AreEqual(new[]
        {
            new SlotPick(0, 0, 0, 4, 0, 1, 1, 0.5f), new SlotPick(0, 0, 1, 9, 1, 1, 0, 0.3f),
            new SlotPick(1, 0, 0, 11, 1, 1, 2, 0.6f), new SlotPick(1, 0, 1, 2, 0, 0, 2, 0.2f),
        }, selection.Picks.ToArray());
        var shares = selection.TaskShares();
        Assert.AreEqual(0.7 / 1.6, shares[0], 1e-6, "task 0's share of the picked weight");
        Assert.AreEqual(0.9 / 1.6, shares[1], 1e-6, "task 1's share");
    }

    [TestMethod]
    public void Png_shows_one_tile_per_slot_and_head_with_picked_patches_outlined_in_the_task_colour()
    {
        using var scope = NewDisposeScope();
        var weights = zeros(1, 1, 2, 8);                                 // 2 tasks on a 2×2 grid, 1 head, 2 slots, k = 1
        weights[0, 0, 0, 1] = tensor(1f);                                // slot 0: task 0, row 0, col 1
        weights[0, 0, 1, 6] = tensor(1f);                                // slot 1: task 1, row 1, col 0
        var selection = SlotVisualizer.FromRetrieveWeights(weights, 1, ["a", "b"], 2, 2, 8)[0];
        var pixels = Enumerable.Repeat(200f, 3 * 16 * 16).ToArray();
        using var folder = new TempFolder();
        var path = folder.File("slots.png");
        SlotVisualizer.WritePng(path, pixels, 16, 16, selection, new SlotImageOptions { Scale = 2, Dim = 0.5f });

        var rgb = PngCodec.Read(path).ToRgb8();
        var png = PngCodec.Read(path);
        int tile = 32, gap = 4, top = 5;                                   // stripe 4 px + 1 px space above the tiles
        Assert.AreEqual((3 * tile + 2 * gap, top + tile), (png.Width, png.Height), "image column + 2 slot tiles, 1 head row");
        (byte, byte, byte) At(int x, int y) { int i = (y * png.Width + x) * 3; return (rgb[i], rgb[i + 1], rgb[i + 2]); }

        Assert.AreEqual(((byte)200, (byte)200, (byte)200), At(5, top + 5), "first column is the image");
        int slot0 = tile + gap, slot1 = 2 * (tile + gap);
        Assert.AreEqual(SlotVisualizer.TaskColours[0], At(slot0 + 16, top), "slot 0 outlines row 0, col 1 in task 0's colour");
        Assert.AreEqual(((byte)200, (byte)200, (byte)200), At(slot0 + 24, top + 8), "inside the picked patch: undimmed");
        Assert.AreEqual(((byte)100, (byte)100, (byte)100), At(slot0 + 8, top + 8), "patch not picked: dimmed");
        Assert.AreEqual(SlotVisualizer.TaskColours[1], At(slot1, top + 16), "slot 1 outlines row 1, col 0 in task 1's colour");
        Assert.AreEqual(SlotVisualizer.TaskColours[0], At(slot0 + 10, 1), "slot 0's stripe: all weight from task 0");
        Assert.AreEqual(SlotVisualizer.TaskColours[1], At(slot1 + 10, 1), "slot 1's stripe: all weight from task 1");
    }

    [TestMethod]
    public void Networks_without_kem_are_rejected_with_a_message()
    {
        using var network = Network(new InteractionOptions { Kind = InteractionKind.CrossAttention });
        using var scope = NewDisposeScope();
        var error = Assert.ThrowsExactly<ArgumentException>(() => SlotVisualizer.Select(network, Images(1)));
        StringAssert.Contains(error.Message, "CrossAttention");
    }
}
