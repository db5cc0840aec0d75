using Microsoft.ML.Kem.Tasks;

namespace Kem.Tests.Tasks;

[TestClass]
public sealed class SaliencyMetricsTests
{
    [TestMethod]
    public void Empty_prediction_and_empty_ground_truth_score_IoU_one()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.SaliencyTask());
        accumulator.Add([0.1f, 0.1f, 0.1f, 0.1f], [0, 0, 0, 0], 2, 2);
        var metrics = (SaliencyMetrics)accumulator.Compute();
        Assert.AreEqual(100.0, metrics.MaxIoU, 1e-9);
        Assert.AreEqual(0.0, metrics.MaxF, 1e-9, "precision and recall are 0 on an empty mask");
    }

    [TestMethod]
    public void MaxIoU_and_MaxF_take_the_best_threshold_of_per_image_means()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.SaliencyTask());
        // image 1 (pixel 3 ignored): τ ≤ 0.30 → J 2/3, P 2/3, R 1; 0.35..0.50 → J 1, P 1, R 1; ≥ 0.55 → J 1/2, P 1, R 1/2
        accumulator.Add([0.95f, 0.52f, 0.33f, 0.99f], [1, 1, 0, 255], 1, 4);
        // image 2: τ ≤ 0.60 → J 1/2, P 1/2, R 1; 0.65..0.80 → 0; ≥ 0.85 → 0
        accumulator.Add([0.62f, 0.83f], [1, 0], 1, 2);
        var metrics = (SaliencyMetrics)accumulator.Compute();
        // best at τ ∈ 0.35..0.50: mean J = (1 + 1/2)/2, P̄ = 3/4, R̄ = 1 → F = 6/7
        Assert.AreEqual(75.0, metrics.MaxIoU, 1e-9);
        Assert.AreEqual(600.0 / 7, metrics.MaxF, 1e-9);
        Assert.AreEqual(metrics.MaxIoU, metrics.Primary);
    }

    [TestMethod]
    public void MaxFBeta03_uses_global_counts_and_beta_squared_0_3()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.SaliencyTask());
        accumulator.Add([0.9f, 0.9f, 0.42f, 0.02f], [1, 0, 1, 0], 2, 2);
        // τ ≤ 0.40: TP 2 of 3 predicted, 2 actual → P 2/3, R 1 → 1.3·P·R / (0.3·P + R)
        double p = 2.0 / 3;
        Assert.AreEqual(100 * 1.3 * p / (0.3 * p + 1), ((SaliencyMetrics)accumulator.Compute()).MaxFBeta03, 1e-9);
    }

    [TestMethod]
    public void Logits_instead_of_probabilities_are_refused()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.SaliencyTask("Sal"));
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => accumulator.Add([2.5f], [1], 1, 1));
        Assert.Contains("'Sal'", error.Message);
        Assert.Contains("sigmoid", error.Message);
    }
}
