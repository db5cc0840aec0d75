using Microsoft.ML.Kem.Tasks;

namespace Kem.Tests.Tasks;

[TestClass]
public sealed class DepthMetricsTests
{
    [TestMethod]
    public void Depth_metrics_skip_zero_and_255_pixels()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.DepthTask());
        // valid pixels: (gt 2, pred 1) and (gt 4, pred 4.4); gt 0 and gt 255 are skipped
        accumulator.Add([1, 9, 9, 4.4f], [2, 0, 255, 4], 2, 2);
        var metrics = (DepthMetrics)accumulator.Compute();
        double p2 = 4.4f;
        Assert.AreEqual(Math.Sqrt((1 + (p2 - 4) * (p2 - 4)) / 2), metrics.Rmse, 1e-9);
        Assert.AreEqual((0.5 + (p2 - 4) / 4) / 2, metrics.AbsRel, 1e-9);
        Assert.AreEqual(Math.Sqrt((Math.Pow(Math.Log(0.5), 2) + Math.Pow(Math.Log(p2 / 4), 2)) / 2), metrics.LogRmse, 1e-9);
        Assert.AreEqual(50.0, metrics.Delta1, 1e-9);
        Assert.AreEqual(metrics.Rmse, metrics.Primary);
        Assert.IsTrue(metrics.LowerIsBetter);
    }

    [TestMethod]
    public void Rmse_is_global_over_the_split_not_a_mean_of_image_rmses()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.DepthTask());
        accumulator.Add([1], [2], 1, 1);
        accumulator.Add([3], [3], 1, 1);
        Assert.AreEqual(Math.Sqrt(0.5), ((DepthMetrics)accumulator.Compute()).Rmse, 1e-12);
    }

    [TestMethod]
    public void Eval_cap_drops_far_pixels_only_when_set()
    {
        var capped = new DepthMetricAccumulator(TaskSpec.DepthTask(), depthEvalMaxMetres: 3f);
        var uncapped = new DepthMetricAccumulator(TaskSpec.DepthTask());
        foreach (var accumulator in new IDenseMetricAccumulator[] { capped, uncapped })
            accumulator.Add([1, 6], [2, 4], 1, 2);
        Assert.AreEqual(1.0, ((DepthMetrics)capped.Compute()).Rmse, 1e-12);
        Assert.AreEqual(Math.Sqrt(2.5), ((DepthMetrics)uncapped.Compute()).Rmse, 1e-12);
    }

    [TestMethod]
    public void Negative_prediction_is_clamped_not_NaN()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.DepthTask());
        accumulator.Add([-1], [1], 1, 1);
        var metrics = (DepthMetrics)accumulator.Compute();
        Assert.IsTrue(double.IsFinite(metrics.LogRmse));
        Assert.AreEqual(1.0, metrics.Rmse, 1e-6);
    }

    [TestMethod]
    public void NaN_prediction_names_the_task()
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.DepthTask("Dep"));
        var error = Assert.ThrowsExactly<ArgumentException>(() => accumulator.Add([float.NaN], [1], 1, 1));
        Assert.Contains("'Dep'", error.Message);
    }
}
