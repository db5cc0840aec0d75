using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Interaction;

[TestClass]
public sealed class TopKSoftmaxTests
{
    // MODEL-SPEC §2 test shape: B=2, h=2, m=3 slots, N=7 tokens, k=3.
    private const int K = 3;
    private static Tensor Scores(long seed = 7) => TensorAssert.Randn(seed, 2, 2, 3, 7);

    [TestMethod]
    [DataRow(TopKMode.Masked)]
    [DataRow(TopKMode.Renormalized)]
    public void TopK_keeps_exactly_k_weights_per_row(TopKMode mode)
    {
        using var scope = NewDisposeScope();
        var weights = TopKSoftmax.Apply(Scores(), K, mode);
        var nonZeros = weights.ne(0).sum(-1);
        Assert.IsTrue(nonZeros.eq(K).all().item<bool>(), $"non-zeros per row: {string.Join(",", nonZeros.data<long>().ToArray())}");
    }

    [TestMethod]
    [DataRow(TopKMode.Masked)]
    [DataRow(TopKMode.Renormalized)]
    public void TopK_keeps_the_k_largest_scores_of_each_row(TopKMode mode)
    {
        using var scope = NewDisposeScope();
        var scores = Scores();
        var kept = TopKSoftmax.Apply(scores, K, mode).ne(0);
        var smallestKept = scores.masked_fill(kept.logical_not(), double.PositiveInfinity).amin([-1]);
        var largestDropped = scores.masked_fill(kept, double.NegativeInfinity).amax([-1]);
        Assert.IsTrue(smallestKept.gt(largestDropped).all().item<bool>(), "a dropped score is larger than a kept one");
    }

    [TestMethod]
    public void Renormalized_rows_sum_to_one()
    {
        using var scope = NewDisposeScope();
        var rowSums = TopKSoftmax.Apply(Scores(), K, TopKMode.Renormalized).sum(-1);
        TensorAssert.Close(ones_like(rowSums), rowSums, 1e-6, "row sums");
    }

    [TestMethod]
    public void Masked_weights_equal_the_full_softmax_at_kept_entries()
    {
        using var scope = NewDisposeScope();
        var scores = Scores();
        var weights = TopKSoftmax.Apply(scores, K, TopKMode.Masked);
        var softmax = scores.softmax(-1);
        var kept = weights.ne(0);
        TensorAssert.Close(softmax.masked_fill(kept.logical_not(), 0.0), weights, 1e-7, "kept weights");
        var rowSums = weights.sum(-1);
        Assert.IsTrue(rowSums.lt(1 - 1e-3).all().item<bool>(), "a Masked row keeps less than the whole softmax mass");
    }

    [TestMethod]
    [DataRow(TopKMode.Masked)]
    [DataRow(TopKMode.Renormalized)]
    public void Gradient_reaches_only_the_kept_scores(TopKMode mode)
    {
        using var scope = NewDisposeScope();
        var scores = Scores().requires_grad_(true);
        var weights = TopKSoftmax.Apply(scores, K, mode);
        (weights * TensorAssert.Randn(11, weights.shape)).sum().backward();
        var grad = scores.grad!;
        var kept = weights.ne(0).detach();
        Assert.AreEqual(0.0, grad.masked_fill(kept, 0.0).abs().max().item<float>(), "gradient at dropped entries");
        Assert.IsTrue(grad.masked_fill(kept.logical_not(), 0.0).abs().max().item<float>() > 1e-4, "kept entries get a gradient");
    }

    [TestMethod]
    [DataRow(TopKMode.Masked, 7)]
    [DataRow(TopKMode.Renormalized, 7)]
    [DataRow(TopKMode.Masked, 50)]
    [DataRow(TopKMode.Renormalized, 50)]
    public void K_at_least_the_row_length_is_the_plain_softmax(TopKMode mode, int k)
    {
        using var scope = NewDisposeScope();
        var scores = Scores();
        TensorAssert.Close(scores.softmax(-1), TopKSoftmax.Apply(scores, k, mode), 1e-7, "weights");
    }

    [TestMethod]
    [DataRow(TopKMode.Masked)]
    [DataRow(TopKMode.Renormalized)]
    public void Permuting_tokens_permutes_the_output(TopKMode mode)
    {
        using var scope = NewDisposeScope();
        var scores = Scores();
        var permutation = tensor(new long[] { 3, 6, 0, 5, 1, 4, 2 });
        var permutedThenWeighted = TopKSoftmax.Apply(scores.index_select(-1, permutation), K, mode);
        var weightedThenPermuted = TopKSoftmax.Apply(scores, K, mode).index_select(-1, permutation);
        TensorAssert.Close(weightedThenPermuted, permutedThenWeighted, 1e-7, "permuted weights");
    }

    [TestMethod]
    [DataRow(TopKMode.Masked)]
    [DataRow(TopKMode.Renormalized)]
    public void PerTask_scope_keeps_k_weights_in_every_task_block(TopKMode mode)
    {
        using var scope = NewDisposeScope();
        const int tasks = 3, perTask = 5, k = 2;
        var scores = TensorAssert.Randn(5, 2, 2, 3, tasks * perTask);
        var weights = TopKSoftmax.ApplyPerTask(scores, k, mode, tasks);
        var perBlock = weights.ne(0).unflatten(3, [tasks, perTask]).sum(-1);
        Assert.IsTrue(perBlock.eq(k).all().item<bool>(), "k winners in every task block");
        if (mode == TopKMode.Renormalized)
            TensorAssert.Close(ones(2, 2, 3), weights.sum(-1), 1e-6, "row sums over all blocks");
        else
            TensorAssert.Close(scores.softmax(-1).masked_fill(weights.eq(0), 0.0), weights, 1e-7, "kept weights");
    }

    [TestMethod]
    public void Joint_scope_lets_tasks_compete_for_the_same_k_places()
    {
        using var scope = NewDisposeScope();
        // Task 0's tokens score far above task 1's: joint top-k gives task 1 nothing, per-task gives it k.
        var scores = cat([full(1, 1, 4, 5.0f) + TensorAssert.Randn(1, 1, 1, 4) * 0.1, TensorAssert.Randn(2, 1, 1, 4) * 0.1], -1);
        var joint = TopKSoftmax.Apply(scores, 2, TopKMode.Renormalized, TopKScope.Joint, tasks: 2);
        var perTask = TopKSoftmax.Apply(scores, 2, TopKMode.Renormalized, TopKScope.PerTask, tasks: 2);
        Assert.AreEqual(0L, joint.narrow(-1, 4, 4).ne(0).sum().item<long>());
        Assert.AreEqual(2L, perTask.narrow(-1, 4, 4).ne(0).sum().item<long>());
    }

    [TestMethod]
    [DataRow(TopKMode.Masked, TopKScope.Joint)]
    [DataRow(TopKMode.Renormalized, TopKScope.Joint)]
    [DataRow(TopKMode.Masked, TopKScope.PerTask)]
    [DataRow(TopKMode.Renormalized, TopKScope.PerTask)]
    public void Weights_have_the_spec_values_and_gradients(TopKMode mode, TopKScope topKScope)
    {
        using var scope = NewDisposeScope();
        const int tasks = 3, k = 2;
        var upstream = TensorAssert.Randn(13, 2, 2, 3, 12);
        var referenceScores = (TensorAssert.Randn(9, 2, 2, 3, 12) * 3).requires_grad_(true);
        var reference = DenseReference(referenceScores, k, mode, topKScope, tasks);
        (reference * upstream).sum().backward();

        var scores = referenceScores.detach().clone().requires_grad_(true);
        var keep = TopKSoftmax.KeepMask(scores, k, topKScope, tasks);
        Assert.AreEqual(ScalarType.Bool, keep.dtype);
        Assert.IsTrue(keep.sum(-1).eq(topKScope == TopKScope.Joint ? k : k * tasks).all().item<bool>(), "kept entries per row");
        var weights = TopKSoftmax.Weights(scores, keep, mode);
        (weights * upstream).sum().backward();

        TensorAssert.Close(reference, weights, 1e-6, "weights");
        TensorAssert.Close(referenceScores.grad!, scores.grad!, 1e-6, "gradients of the scores");
        Assert.IsTrue(scores.grad!.abs().max().item<float>() > 1e-4, "the kept scores get a gradient");
    }

    /// <summary>
    /// The spec's dense form, written out independently of the library: a boolean mask of the k largest entries (per
    /// row or per task block); Masked = the row's softmax at kept entries with the dropped ones as constants in the
    /// denominator, Renormalized = softmax with −∞ outside the mask.
    /// </summary>
    private static Tensor DenseReference(Tensor scores, int k, TopKMode mode, TopKScope topKScope, int tasks)
    {
        Tensor keep;
        using (no_grad())
        {
            var rows = topKScope == TopKScope.Joint ? scores : scores.unflatten(scores.dim() - 1, [tasks, scores.shape[^1] / tasks]);
            var indices = rows.topk(k, dim: -1).indexes;
            keep = zeros_like(rows, dtype: ScalarType.Bool).scatter_(-1, indices, ones_like(indices, dtype: ScalarType.Bool));
            if (topKScope == TopKScope.PerTask) keep = keep.flatten(-2);
        }
        if (mode == TopKMode.Renormalized) return scores.masked_fill(keep.logical_not(), double.NegativeInfinity).softmax(-1);
        var exp = (scores - scores.amax([-1], keepdim: true).detach()).exp();
        var kept = exp.masked_fill(keep.logical_not(), 0.0);
        var dropped = exp.detach().masked_fill(keep, 0.0);
        return kept / (kept.sum(-1, keepdim: true) + dropped.sum(-1, keepdim: true));
    }

    [TestMethod]
    public void KeepMask_refuses_rows_it_would_keep_whole()
    {
        using var scope = NewDisposeScope();
        Assert.IsTrue(TopKSoftmax.KeepsAll(7, 7, TopKScope.Joint, 1));
        Assert.IsFalse(TopKSoftmax.KeepsAll(12, 3, TopKScope.PerTask, 3));
        Assert.IsTrue(TopKSoftmax.KeepsAll(12, 4, TopKScope.PerTask, 3));
        Assert.ThrowsExactly<ArgumentException>(() => TopKSoftmax.KeepMask(Scores(), 7, TopKScope.Joint, 1));
    }

    // TopKAxis.Slots: B=2, h=2, m=5 slots, N=7 tokens, k=2 slots per token; slot 0 scores lowest everywhere, so no token picks it.
    private const int SlotK = 2;
    private static Tensor SlotScores()
    {
        var scores = TensorAssert.Randn(5, 2, 2, 5, 7);
        scores.narrow(-2, 0, 1).sub_(10);
        return scores;
    }

    [TestMethod]
    [DataRow(TopKMode.Masked)]
    [DataRow(TopKMode.Renormalized)]
    public void OverSlots_gives_every_token_exactly_k_slots_and_normalises_every_chosen_slot(TopKMode mode)
    {
        using var scope = NewDisposeScope();
        var scores = SlotScores();
        var weights = TopKSoftmax.OverSlots(scores, SlotK, mode);
        CollectionAssert.AreEqual(scores.shape, weights.shape);
        var perToken = weights.ne(0).sum(-2);
        Assert.IsTrue(perToken.eq(SlotK).all().item<bool>(), $"non-zeros per token column: {string.Join(",", perToken.data<long>().ToArray())}");
        var rowSums = weights.sum(-1);                                                  // B×h×m
        Assert.AreEqual(0f, rowSums.narrow(-1, 0, 1).abs().max().item<float>(), "a slot that no token chose stays empty");
        var chosen = rowSums.narrow(-1, 1, 4);
        TensorAssert.Close(ones_like(chosen), chosen, 1e-6, "rows of the chosen slots sum to 1 over the tokens");

        var kept = weights.ne(0);                                                       // the k largest scores of every column
        var smallestKept = scores.masked_fill(kept.logical_not(), double.PositiveInfinity).amin([-2]);
        var largestDropped = scores.masked_fill(kept, double.NegativeInfinity).amax([-2]);
        Assert.IsTrue(smallestKept.gt(largestDropped).all().item<bool>(), "a dropped slot scores higher than a kept one");
    }

    [TestMethod]
    [DataRow(TopKMode.Masked)]
    [DataRow(TopKMode.Renormalized)]
    public void OverSlots_gradient_reaches_only_the_kept_scores(TopKMode mode)
    {
        using var scope = NewDisposeScope();
        var scores = SlotScores().requires_grad_(true);
        var weights = TopKSoftmax.OverSlots(scores, SlotK, mode);
        (weights * TensorAssert.Randn(11, weights.shape)).sum().backward();
        var grad = scores.grad!;
        var kept = weights.ne(0).detach();
        Assert.IsTrue(grad.isfinite().all().item<bool>(), "finite gradient");
        Assert.AreEqual(0.0, grad.masked_fill(kept, 0.0).abs().max().item<float>(), "gradient at dropped entries");
        Assert.IsTrue(grad.masked_fill(kept.logical_not(), 0.0).abs().max().item<float>() > 1e-4, "kept entries get a gradient");
    }

    [TestMethod]
    public void OverSlots_with_every_slot_kept_is_the_softmax_over_slots_averaged_over_tokens()
    {
        using var scope = NewDisposeScope();
        var scores = TensorAssert.Randn(5, 2, 2, 5, 7);
        var softmax = scores.softmax(-2);                                               // Slot Attention: softmax over the slots …
        var expected = softmax / softmax.sum(-1, keepdim: true);                        // … then a weighted mean over the tokens
        TensorAssert.Close(expected, TopKSoftmax.OverSlots(scores, 5, TopKMode.Masked), 1e-6, "k = m");
        var masked = TopKSoftmax.OverSlots(scores, SlotK, TopKMode.Masked);
        var renormalized = TopKSoftmax.OverSlots(scores, SlotK, TopKMode.Renormalized);
        Assert.IsTrue(TensorAssert.MaxAbsDiff(masked, renormalized) > 1e-3, "the mode weighs each token's kept slots");
    }

    [TestMethod]
    public void K_below_one_is_rejected()
    {
        using var scope = NewDisposeScope();
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TopKSoftmax.Apply(Scores(), 0, TopKMode.Masked));
    }
}
