using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;

namespace Kem.Tests.Training;

[TestClass]
public sealed class DwaTrainingTests
{
    [TestMethod]
    public void Dwa_weights_change_after_epoch_two_by_the_formula_on_the_reported_epoch_losses()
    {
        TaskSpec[] tasks = [TaskSpec.Segmentation(TinyData.Classes, weight: 2f), TinyData.Depth]; // w ≠ 1, so w·λ·L is checked
        var data = TinyData.Make(tasks, 8, 32, 32, seed: 5);
        torch.manual_seed(1);
        using var net = new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(tasks) with
        {
            ImageHeight = 32, ImageWidth = 32, Width = 32, Heads = 2,
            Interaction = new InteractionOptions { Kind = InteractionKind.StableKem, MemorySlots = 4, TopK = 3 },
        });
        var options = new TrainingOptions
        {
            Epochs = 4, BatchSize = 4, LearningRate = 1e-3, WarmupSteps = 2, Device = ComputeDevice.Cpu, ReportEverySteps = 1,
            LossWeighting = LossWeighting.Dwa,
        };
        var reports = new List<TrainingProgress>();
        var lines = new List<string>();
        var history = MultiTaskTrainingLoop.Fit(net, data, null, options, new SyncProgress(reports.Add), lines.Add).History;
        var names = tasks.Select(t => t.Name).ToArray();

        foreach (var epoch in history.Take(2))
            CollectionAssert.AreEqual(new[] { 1.0, 1.0 }, names.Select(n => epoch.DwaWeights![n]).ToArray(), $"epoch {epoch.Epoch}: λ = 1");
        for (int e = 2; e < history.Count; e++)
        {
            // MODEL-SPEC §8 by hand: r_t = L̄_t(e−1)/L̄_t(e−2), λ_t = T·exp(r_t/2)/Σ_u exp(r_u/2), on the reported epoch means
            var exp = names.Select(n => Math.Exp(history[e - 1].TrainTaskLosses![n] / history[e - 2].TrainTaskLosses![n] / 2)).ToArray();
            var lambda = names.Select(n => history[e].DwaWeights![n]).ToArray();
            for (int t = 0; t < names.Length; t++)
                Assert.AreEqual(2 * exp[t] / exp.Sum(), lambda[t], 1e-9, $"epoch {e + 1}, {names[t]}");
            Assert.AreEqual(2.0, lambda.Sum(), 1e-9);
        }
        Assert.IsGreaterThan(1e-3, Math.Abs(history[2].DwaWeights![names[0]] - 1), "λ moved at epoch 3");

        var train = reports.Where(r => r.Phase == "train").ToList();
        foreach (var r in train)
        {
            // one step per report: the optimised loss is Σ_t w_t·λ_t·L_t with the epoch's λ and the reported raw L_t
            Assert.AreSame(history[r.Epoch - 1].DwaWeights, r.DwaWeights);
            double expected = tasks.Sum(t => t.LossWeight * r.DwaWeights![t.Name] * r.TaskLosses[t.Name]);
            Assert.AreEqual(expected, r.Loss, 1e-5 * expected, $"step {r.Step}");
        }
        foreach (var epoch in history) // L̄_t is the mean of the epoch's reported (unweighted) task losses
            foreach (var n in names)
                Assert.AreEqual(train.Where(r => r.Epoch == epoch.Epoch).Average(r => r.TaskLosses[n]), epoch.TrainTaskLosses![n], 1e-6);
        Assert.IsTrue(lines.Any(l => l.Contains("epoch 3/4") && l.Contains("λ (Segmentation ")), "the log shows λ");
    }

    [TestMethod]
    public void Other_modes_report_no_dwa_weights_but_the_epoch_task_losses()
    {
        var data = TinyData.Make(TinyData.SegDepth, 4, 32, 32, seed: 6);
        torch.manual_seed(2);
        using var net = new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(TinyData.SegDepth) with { ImageHeight = 32, ImageWidth = 32, Width = 32, Heads = 2 });
        var history = MultiTaskTrainingLoop.Fit(net, data, null, new TrainingOptions { Epochs = 1, BatchSize = 4, Device = ComputeDevice.Cpu, LossWeighting = LossWeighting.Fixed }).History;
        Assert.IsNull(history[0].DwaWeights);
        CollectionAssert.AreEquivalent(new[] { "Segmentation", "Depth" }, history[0].TrainTaskLosses!.Keys.ToArray());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainingOptions { DwaTemperature = 0 }.Validate());
    }

    /// <summary>IProgress that calls back synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<TrainingProgress> onReport) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => onReport(value);
    }
}
