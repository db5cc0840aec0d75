using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;

namespace Kem.Tests.Trainers;

/// <summary>
/// The evaluation options (MODEL-SPEC §9 DepthEvalMaxMetres) reach every scoring path — the accumulator factory, the engine's
/// Evaluation and TrivialBaseline, and the ML.NET evaluator — and the evaluator's result carries the secondary metrics.
/// </summary>
[TestClass]
public sealed class EvaluationOptionsTests
{
    private const int H = 2, W = 2;
    private static readonly DenseMetricOptions Capped = new() { DepthEvalMaxMetres = 3f };

    public sealed class ScoredRow
    {
        [VectorType(1, H, W)] public float[] Depth { get; set; } = [];
        [VectorType(1, H, W)] public float[] DepthScore { get; set; } = [];
        [VectorType(1, H, W)] public float[] Saliency { get; set; } = [];
        [VectorType(1, H, W)] public float[] SaliencyScore { get; set; } = [];
    }

    // One 2×2 image. Depth: gt 2, 4, 8 (far), 0 (invalid); predicted 1, 4.4, 5, 9.
    // Saliency: G = {0, 1}; p = 0.95, 0.1, 0.6, 0.1.
    private static readonly ScoredRow Row = new()
    {
        Depth = [2, 4, 8, 0], DepthScore = [1, 4.4f, 5, 9],
        Saliency = [1, 1, 0, 0], SaliencyScore = [0.95f, 0.1f, 0.6f, 0.1f],
    };

    private static readonly TaskColumn[] Columns = [new(TaskSpec.DepthTask()), new(TaskSpec.SaliencyTask())];

    private static MultiTaskMetrics EvaluateRow(DenseMetricOptions? options)
    {
        var ml = new MLContext(seed: 1);
        return ml.MultiTask().Evaluate(ml.Data.LoadFromEnumerable([Row]), Columns, metricOptions: options);
    }

    [TestMethod]
    public void Accumulator_factory_applies_the_depth_cap()
    {
        var capped = DenseMetrics.CreateAccumulator(TaskSpec.DepthTask(), Capped);
        var uncapped = DenseMetrics.CreateAccumulator(TaskSpec.DepthTask());
        foreach (var accumulator in new[] { capped, uncapped })
            accumulator.Add([1, 6], [2, 4], 1, 2);
        Assert.AreEqual(1.0, ((DepthMetrics)capped.Compute()).Rmse, 1e-12, "gt 4 ≥ 3 m is dropped");
        Assert.AreEqual(Math.Sqrt(2.5), ((DepthMetrics)uncapped.Compute()).Rmse, 1e-12);
    }

    [TestMethod]
    [DataRow(0f)]
    [DataRow(-1f)]
    [DataRow(float.NaN)]
    [DataRow(float.PositiveInfinity)]
    public void A_cap_that_is_not_a_positive_distance_is_refused_by_name(float cap)
    {
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            DenseMetrics.CreateAccumulator(TaskSpec.DepthTask(), new DenseMetricOptions { DepthEvalMaxMetres = cap }));
        Assert.Contains("DepthEvalMaxMetres", error.Message);
    }

    [TestMethod]
    public void MLNet_evaluator_applies_the_cap_and_exposes_the_secondary_metrics()
    {
        var uncapped = EvaluateRow(null);
        var depth = (DepthMetrics)uncapped["Depth"];
        // valid: (2 → 1), (4 → 4.4), (8 → 5); squared errors 1, 0.16, 9
        Assert.AreEqual(Math.Sqrt((1 + 0.16 + 9) / 3), depth.Rmse, 1e-6);
        Assert.AreEqual((0.5 + 0.1 + 0.375) / 3, depth.AbsRel, 1e-6);
        Assert.AreEqual(Math.Sqrt((Math.Log(0.5) * Math.Log(0.5) + Math.Log(1.1) * Math.Log(1.1) + Math.Log(5.0 / 8) * Math.Log(5.0 / 8)) / 3), depth.LogRmse, 1e-6);

        var capped = (DepthMetrics)EvaluateRow(Capped)["Depth"];
        // gt 4 and 8 are ≥ 3 m: only (2 → 1) is left
        Assert.AreEqual(1.0, capped.Rmse, 1e-9);
        Assert.AreEqual(0.5, capped.AbsRel, 1e-9);
        Assert.AreEqual(Math.Log(2), capped.LogRmse, 1e-9);

        var saliency = (SaliencyMetrics)uncapped["Saliency"];
        // τ < 0.6: P = {0, 2}, precision 1/2, recall 1/2, F 1/2, J 1/3; τ > 0.6: P = {0}, precision 1, recall 1/2, F 2/3, J 1/2
        Assert.AreEqual(200.0 / 3, saliency.MaxF, 1e-9);
        Assert.AreEqual(50.0, saliency.MaxIoU, 1e-9);
        // β² = 0.3 on counts: τ > 0.6 gives P 1, R 1/2, F = 1.3·0.5 / (0.3 + 0.5) = 0.8125
        Assert.AreEqual(81.25, saliency.MaxFBeta03, 1e-9);

        CollectionAssert.AreEqual(new[] { "AbsRel", "LogRmse", "Delta1" }, depth.Secondary.Select(m => m.Name).ToArray());
        Assert.AreEqual(depth.LogRmse, depth.Secondary.Single(m => m.Name == "LogRmse").Value);
        Assert.AreEqual(saliency.MaxF, saliency.Secondary.Single(m => m.Name == "MaxF").Value);
    }

    [TestMethod]
    public void Engine_evaluation_and_trivial_baseline_apply_the_cap()
    {
        var task = TaskSpec.DepthTask();
        const int size = 16;
        var images = new float[3 * size * size];
        for (int i = 0; i < images.Length; i++) images[i] = (i * 37) % 255;
        var label = new float[size * size];
        for (int i = 0; i < label.Length; i++) label[i] = i % 2 == 0 ? 1f : 10f;   // half of the pixels are far
        var data = new DenseDataset([task], size, size, images, [label]);
        torch.manual_seed(3);
        using var network = new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(task) with
        {
            ImageHeight = size, ImageWidth = size, Interaction = new InteractionOptions { Kind = InteractionKind.None },
        });

        var prediction = Evaluation.PredictionOf(Inference.Predict(network, images, 1)[0], 0, size * size);
        double NearRmse() => Math.Sqrt(Enumerable.Range(0, label.Length).Where(i => label[i] < 3)
            .Average(i => Math.Pow(Math.Max(prediction[i], DepthMetricAccumulator.MinPrediction) - label[i], 2)));
        var capped = (DepthMetrics)Evaluation.Evaluate(network, data, metricOptions: Capped)[0];
        var uncapped = (DepthMetrics)Evaluation.Evaluate(network, data)[0];
        Assert.AreEqual(NearRmse(), capped.Rmse, 1e-5, "the cap keeps the 1 m pixels only");
        Assert.IsGreaterThan(capped.Rmse + 1, uncapped.Rmse, "the 10 m pixels count without the cap");

        // the constant predictor learns the mean valid depth 5.5 m: RMSE 4.5 m either way, but only 1 m pixels under the cap
        Assert.AreEqual(4.5, ((DepthMetrics)TrivialBaseline.Evaluate(data, data, Capped)[0]).Rmse, 1e-5);
        Assert.AreEqual(4.5, ((DepthMetrics)TrivialBaseline.Evaluate(data, data)[0]).Rmse, 1e-5);
        Assert.AreEqual(4.5, ((DepthMetrics)TrivialBaseline.Evaluate(data, data, Capped)[0]).AbsRel, 1e-5, "|5.5 − 1| / 1");
        Assert.AreEqual((4.5 + 0.45) / 2, ((DepthMetrics)TrivialBaseline.Evaluate(data, data)[0]).AbsRel, 1e-5);
    }
}
