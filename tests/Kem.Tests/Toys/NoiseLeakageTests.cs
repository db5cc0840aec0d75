using Kem.Tests.Interaction;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Toys;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Toys;

[TestClass]
public sealed class NoiseLeakageTests
{
    private const int Tasks = 3, PerTask = 4, Slots = 3, Noise = 2;

    /// <summary>Hand-set retrieve scores 1×1×m×3n: every signal token scores in [1, 2), every noise token in [−2, −1).</summary>
    private static Tensor ScoresWithNoiseLowest()
    {
        var signal = TensorAssert.Randn(1, 1, 1, Slots, 2 * PerTask).abs().clamp_max(0.99) + 1;
        var noise = -TensorAssert.Randn(2, 1, 1, Slots, PerTask).abs().clamp_max(0.99) - 1;
        return cat([signal, noise], -1);
    }

    [TestMethod]
    public void Kem_noise_share_is_exactly_zero_when_noise_tokens_score_lowest_and_k_is_below_2n()
    {
        using var scope = NewDisposeScope();
        var scores = ScoresWithNoiseLowest();
        var write = TensorAssert.Randn(3, 1, 1, Tasks * PerTask, Slots).softmax(-1);   // any write weights
        foreach (var k in new[] { 1, 3, 2 * PerTask - 1 })
        {
            var retrieve = TopKSoftmax.Apply(scores, k, TopKMode.Masked);
            var kem = NoiseLeakage.Kem(write, retrieve, Tasks, Noise);
            Assert.AreEqual(0.0, kem[0], $"task 1, k = {k}");
            Assert.AreEqual(0.0, kem[1], $"task 2, k = {k}");
            Assert.AreEqual(0.0, NoiseLeakage.Retrieved(retrieve, Tasks, Noise), $"retrieved, k = {k}");
            Assert.AreEqual(0.0, NoiseLeakage.PickedNoiseFraction(retrieve, Tasks, Noise), $"picked, k = {k}");
        }

        // The same scores through a plain softmax (k = N) leak onto the noise tokens …
        var softmax = TopKSoftmax.Apply(scores, Tasks * PerTask, TopKMode.Masked);
        Assert.IsTrue(NoiseLeakage.Kem(write, softmax, Tasks, Noise).Take(2).All(m => m > 0), "softmax retrieve leaks");
        // … and so does softmax attention whose query rows carry these scores.
        var attention = scores.expand(1, 1, Tasks * PerTask / Slots, Slots, Tasks * PerTask).reshape(1, 1, Tasks * PerTask, Tasks * PerTask).softmax(-1);
        var ca = NoiseLeakage.Attention(attention, Tasks, Noise);
        Assert.IsTrue(ca[0] > 0 && ca[1] > 0, $"softmax attention leaks ({ca[0]:E2}, {ca[1]:E2})");
    }

    [TestMethod]
    public void Shares_match_hand_computed_values()
    {
        using var scope = NewDisposeScope();
        // 2 tasks of 1 token each (N = 2), the second is noise: attention rows (0.75, 0.25) and (0.4, 0.6)
        var attention = tensor(new float[] { 0.75f, 0.25f, 0.4f, 0.6f }, [1, 1, 2, 2]);
        CollectionAssert.AreEqual(new[] { 0.25, 0.6 }, NoiseLeakage.Attention(attention, 2, 1).Select(v => Math.Round(v, 6)).ToArray());
        // KEM: slot 0 reads (0.5, 0) (masked, row sums to 0.5), slot 1 reads (0.2, 0.3); token 0 writes (1, 0), token 1 (0.5, 0.5)
        var retrieve = tensor(new float[] { 0.5f, 0f, 0.2f, 0.3f }, [1, 1, 2, 2]);
        var write = tensor(new float[] { 1f, 0f, 0.5f, 0.5f }, [1, 1, 2, 2]);
        // Ã row 0 = (0.5, 0) → share 0; row 1 = (0.35, 0.15) → 0.15 / 0.5 = 0.3
        CollectionAssert.AreEqual(new[] { 0.0, 0.3 }, NoiseLeakage.Kem(write, retrieve, 2, 1).Select(v => Math.Round(v, 6)).ToArray());
        Assert.AreEqual(0.3, NoiseLeakage.Retrieved(retrieve, 2, 1), 1e-6, "0.3 of 1.0 retrieved mass is noise");
        Assert.AreEqual(1.0 / 3, NoiseLeakage.PickedNoiseFraction(retrieve, 2, 1), 1e-9, "1 of 3 picks is noise");
    }

    [TestMethod]
    public void Uniform_attention_gives_one_third_noise_share()
    {
        using var scope = NewDisposeScope();
        var uniform = full(2, 1, Tasks * PerTask, Tasks * PerTask, 1.0f / (Tasks * PerTask));
        foreach (var share in NoiseLeakage.Attention(uniform, Tasks, Noise)) Assert.AreEqual(1.0 / 3, share, 1e-6);
    }

    [TestMethod]
    public void Both_toy_models_trace_their_weights_with_the_right_shapes_and_see_the_same_data()
    {
        using var scope = NewDisposeScope();
        var data = new NoiseToyData(new NoiseToyOptions { Seed = 2 });
        var (features, targets) = NoiseToyExperiment.Tensors(data.Batch(0, 3), 3);
        var (again, _) = NoiseToyExperiment.Tensors(new NoiseToyData(new NoiseToyOptions { Seed = 2 }).Batch(0, 3), 3);
        Assert.IsTrue(features.eq(again).all().item<bool>(), "seeded generator: both models get identical inputs");
        CollectionAssert.AreEqual(new long[] { 3, 3, 16, 32 }, features.shape);
        CollectionAssert.AreEqual(new long[] { 3, 2, 16, 4 }, targets.shape);

        manual_seed(1);
        using var ca = new NoiseToyModel(new NoiseToyModelOptions { Interaction = NoiseToyInteraction.CrossAttention });
        manual_seed(1);
        using var kem = new NoiseToyModel(new NoiseToyModelOptions { Interaction = NoiseToyInteraction.Kem });
        using var noGrad = no_grad();
        var caTrace = ca.Trace(features);
        var kemTrace = kem.Trace(features);
        CollectionAssert.AreEqual(targets.shape, caTrace.Predictions.shape);
        CollectionAssert.AreEqual(targets.shape, kemTrace.Predictions.shape);
        Assert.HasCount(2, caTrace.Layers);
        Assert.HasCount(2, kemTrace.Layers);
        CollectionAssert.AreEqual(new long[] { 3, 1, 48, 48 }, caTrace.Layers[0].AttentionWeights!.shape);
        CollectionAssert.AreEqual(new long[] { 3, 1, 4, 48 }, kemTrace.Layers[0].Kem!.RetrieveWeights.shape);
        Assert.IsTrue(kemTrace.Layers[0].Kem!.RetrieveWeights.ne(0).sum(-1).eq(4).all().item<bool>(), "m = 4 slots each read k = 4 tokens");
        TensorAssert.Close(kem.call(features), kemTrace.Predictions, 1e-6, "Trace = forward");

        // Without the noise task the model takes 2 task groups.
        manual_seed(1);
        using var clean = new NoiseToyModel(new NoiseToyModelOptions { Interaction = NoiseToyInteraction.Kem, Tasks = 2 });
        CollectionAssert.AreEqual(targets.shape, clean.call(features.narrow(1, 0, 2)).shape);
    }

    [TestMethod]
    public void A_short_training_run_lowers_the_loss_and_reports_every_measurement()
    {
        var data = new NoiseToyOptions { Seed = 1 };
        var training = new NoiseToyTrainingOptions { Steps = 60, BatchSize = 16, EvaluationSamples = 32, LearningRate = 3e-3 };
        var untrained = NoiseToyExperiment.Run(data, new NoiseToyModelOptions { Interaction = NoiseToyInteraction.Kem }, training with { Steps = 1 });
        var trained = NoiseToyExperiment.Run(data, new NoiseToyModelOptions { Interaction = NoiseToyInteraction.Kem }, training);
        Assert.IsLessThan(untrained.Mse.Average(), trained.Mse.Average(), "60 steps lower the held-out MSE");
        Assert.HasCount(2, trained.NoiseShare);
        Assert.HasCount(2, trained.RetrievedNoiseShare);
        Assert.IsTrue(trained.NoiseShare.All(layer => layer.Length == 2 && layer.All(v => v >= 0 && v <= 1)));
        var again = NoiseToyExperiment.Run(data, new NoiseToyModelOptions { Interaction = NoiseToyInteraction.Kem }, training);
        CollectionAssert.AreEqual(trained.Mse, again.Mse, "same seed, same result");
    }
}
