using Microsoft.ML.Kem.Tasks;

namespace Kem.Tests.Tasks;

[TestClass]
public sealed class DynamicWeightAverageTests
{
    static readonly string[] Two = ["Segmentation", "Depth"];
    static readonly string[] Three = ["Segmentation", "Parts", "Saliency"];

    [TestMethod]
    public void Weights_are_one_for_the_first_two_epochs()
    {
        CollectionAssert.AreEqual(new[] { 1.0, 1.0, 1.0 }, DynamicWeightAverage.Weights(Three, []));        // epoch 1
        CollectionAssert.AreEqual(new[] { 1.0, 1.0, 1.0 }, DynamicWeightAverage.Weights(Three, [[3.0, 0.2, 9.0]])); // epoch 2
    }

    [TestMethod]
    public void Two_tasks_follow_the_softmax_of_the_loss_ratios()
    {
        // epoch 3 from L̄(1) = (1, 1), L̄(2) = (0.8, 0.5): r = (0.8, 0.5), λ_1 = 2·e^0.4/(e^0.4 + e^0.25) = 2/(1 + e^−0.15)
        var lambda = DynamicWeightAverage.Weights(Two, [[1.0, 1.0], [0.8, 0.5]]);
        Assert.AreEqual(1.0748597, lambda[0], 1e-6);
        Assert.AreEqual(0.9251403, lambda[1], 1e-6);
        Assert.AreEqual(2.0, lambda.Sum(), 1e-12);
        Assert.IsGreaterThan(lambda[1], lambda[0], "the task whose loss fell less gets more weight");
    }

    [TestMethod]
    public void Three_tasks_use_only_the_last_two_epochs_and_sum_to_T()
    {
        // epoch 4 from L̄(2) = (2, 1, 0.5), L̄(3) = (1, 1, 1): r = (0.5, 1, 2), r/τ = (0.25, 0.5, 1),
        // λ = 3·(1.284025, 1.648721, 2.718282) / 5.651028 (epoch 1's means play no part)
        var lambda = DynamicWeightAverage.Weights(Three, [[100.0, 0.01, 7.0], [2.0, 1.0, 0.5], [1.0, 1.0, 1.0]]);
        Assert.AreEqual(0.6816593, lambda[0], 1e-6);
        Assert.AreEqual(0.8752679, lambda[1], 1e-6);
        Assert.AreEqual(1.4430728, lambda[2], 1e-6);
        Assert.AreEqual(3.0, lambda.Sum(), 1e-12);
    }

    [TestMethod]
    public void Temperature_divides_the_ratios()
    {
        // τ = 1: λ_1 = 2/(1 + e^−0.3)
        var lambda = DynamicWeightAverage.Weights(Two, [[1.0, 1.0], [0.8, 0.5]], temperature: 1);
        Assert.AreEqual(1.1488850, lambda[0], 1e-6);
        Assert.AreEqual(0.8511150, lambda[1], 1e-6);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => DynamicWeightAverage.Weights(Two, [], temperature: 0));
    }

    [TestMethod]
    public void Huge_ratios_do_not_overflow()
    {
        var lambda = DynamicWeightAverage.Weights(Two, [[1e-6, 1.0], [1e3, 1.0]]); // r = (1e9, 1)
        Assert.AreEqual(2.0, lambda[0], 1e-12);
        Assert.AreEqual(0.0, lambda[1], 1e-12);
    }

    [TestMethod]
    public void A_zero_or_nan_epoch_loss_names_the_task()
    {
        var zero = Assert.ThrowsExactly<InvalidOperationException>(() => DynamicWeightAverage.Weights(Two, [[1.0, 0.0], [0.5, 0.0]]));
        StringAssert.Contains(zero.Message, "task 'Depth'");
        StringAssert.Contains(zero.Message, "epoch 2");
        var nan = Assert.ThrowsExactly<InvalidOperationException>(() => DynamicWeightAverage.Weights(Two, [[1.0, 1.0], [double.NaN, 0.5]]));
        StringAssert.Contains(nan.Message, "task 'Segmentation'");
    }
}
