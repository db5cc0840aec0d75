using Kem.Tests.Interaction;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Training;

/// <summary>MODEL-SPEC §11: the learning-rate schedules, the weight-decay groups, the validation schedule and the recipe presets.</summary>
[TestClass]
public sealed class TrainingRecipeTests
{
    private const int H = 32, W = 32;

    private static MultiTaskNetworkOptions Net() =>
        MultiTaskNetworkOptions.Tiny(TinyData.SegDepth) with
        {
            ImageHeight = H, ImageWidth = W, Width = 32, Heads = 2,
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 },
        };

    private static readonly TrainingOptions Quick = new()
    {
        Epochs = 2, BatchSize = 4, LearningRate = 1e-3, WarmupSteps = 2, Device = ComputeDevice.Cpu, ReportEverySteps = 2,
    };

    [TestMethod]
    public void Per_epoch_poly_is_constant_within_an_epoch_and_follows_one_minus_e_over_E()
    {
        // E = 4 epochs of 10 steps, warm-up 5 steps: lr_e = (1 − e/4)^0.9, e 0-based.
        var s = new LearningRateSchedule(1.0, TotalSteps: 40, WarmupSteps: 5, Power: 0.9, LearningRateDecay.PerEpoch, StepsPerEpoch: 10);
        Assert.AreEqual(0.2, s.At(0), 1e-12, "warm-up step 1 of 5");
        Assert.AreEqual(0.8, s.At(3), 1e-12, "warm-up step 4 of 5");
        Assert.AreEqual(1.0, s.At(4), 1e-12);
        Assert.AreEqual(1.0, s.At(9), 1e-12, "epoch 0 runs at lr_0");
        Assert.AreEqual(0.7718895067235705, s.At(10), 1e-12, "epoch 1: 0.75^0.9");
        Assert.AreEqual(0.7718895067235705, s.At(19), 1e-12, "constant within epoch 1");
        Assert.AreEqual(0.5358867312681466, s.At(25), 1e-12, "epoch 2: 0.5^0.9");
        Assert.AreEqual(0.2871745887492587, s.At(39), 1e-12, "last epoch: 0.25^0.9, not 0");
    }

    [TestMethod]
    public void Per_epoch_warm_up_that_reaches_into_epoch_1_scales_that_epochs_rate()
    {
        var s = new LearningRateSchedule(1.0, TotalSteps: 40, WarmupSteps: 15, Power: 0.9, LearningRateDecay.PerEpoch, StepsPerEpoch: 10);
        Assert.AreEqual(13.0 / 15 * 0.7718895067235705, s.At(12), 1e-12);
        Assert.AreEqual(0.7718895067235705, s.At(14), 1e-12);
    }

    [TestMethod]
    public void Per_iteration_poly_decays_every_step_after_warm_up()
    {
        var s = new LearningRateSchedule(1.0, TotalSteps: 110, WarmupSteps: 10, Power: 0.9, LearningRateDecay.PerIteration, StepsPerEpoch: 11);
        Assert.AreEqual(0.5, s.At(4), 1e-12);
        Assert.AreEqual(0.7718895067235705, s.At(35), 1e-12, "(1 − 25/100)^0.9");
        Assert.AreNotEqual(s.At(35), s.At(36), "moves within an epoch");
        Assert.AreEqual(0.0, s.At(110), 1e-12);
    }

    [TestMethod]
    [DataRow(LearningRateDecay.PerEpoch, 0.5358867312681466)]   // epoch 2 of 2: (1 − 1/2)^0.9
    [DataRow(LearningRateDecay.PerIteration, 0.37204105801130144)] // step 4 of 4, warm-up 1: (1 − 2/3)^0.9
    public void Loop_uses_the_chosen_decay(LearningRateDecay decay, double factor)
    {
        var train = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 5);
        var reports = new List<TrainingProgress>();
        torch.manual_seed(1);
        using var net = new MultiTaskNetwork(Net());
        MultiTaskTrainingLoop.Fit(net, train, null, Quick with { LearningRateDecay = decay }, new SyncProgress(reports.Add));
        var last = reports.Last(r => r.Phase == "train");
        Assert.AreEqual(4, last.Step);
        Assert.AreEqual(1e-3 * factor, last.LearningRate, 1e-12);
    }

    [TestMethod]
    public void Validate_last_epochs_validates_exactly_those_epochs_and_keeps_the_best_of_them()
    {
        var train = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 5);
        var valid = TinyData.Make(TinyData.SegDepth, 4, H, W, seed: 6);
        var reports = new List<TrainingProgress>();
        torch.manual_seed(1);
        using var net = new MultiTaskNetwork(Net());
        var result = MultiTaskTrainingLoop.Fit(net, train, valid, Quick with { Epochs = 5, ValidateLastEpochs = 2, LearningRate = 3e-3 }, new SyncProgress(reports.Add));
        CollectionAssert.AreEqual(new[] { 4, 5 }, result.History.Where(h => h.ValidationLoss is not null).Select(h => h.Epoch).ToArray());
        CollectionAssert.AreEqual(new[] { 4, 5 }, reports.Where(r => r.Phase == "validate").Select(r => r.Epoch).ToArray());
        Assert.AreEqual(result.History.Where(h => h.ValidationLoss is not null).MinBy(h => h.ValidationLoss!.Value)!.Epoch, result.BestEpoch);
        var (loss, _) = MultiTaskTrainingLoop.Validate(net, valid, 4, torch.CPU);
        Assert.AreEqual(result.BestValidationLoss!.Value, loss, 1e-4, "the network holds the best validated epoch's weights");
    }

    [TestMethod]
    public void ValidatesAfter_follows_the_last_N_or_the_every_N_rule()
    {
        static int[] Epochs(TrainingOptions o) => Enumerable.Range(1, o.Epochs).Where(o.ValidatesAfter).ToArray();
        CollectionAssert.AreEqual(Enumerable.Range(91, 10).ToArray(), Epochs(TrainingOptions.MtformerNyud));
        CollectionAssert.AreEqual(new[] { 3, 6, 9, 10 }, Epochs(new TrainingOptions { Epochs = 10, ValidateEveryEpochs = 3 }));
        CollectionAssert.AreEqual(new[] { 1, 2, 3 }, Epochs(new TrainingOptions { Epochs = 3, ValidateLastEpochs = 10 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainingOptions { ValidateLastEpochs = 0 }.Validate());
    }

    [TestMethod]
    public void Decay_groups_spare_norms_biases_position_bias_tables_memory_slots_and_loss_weights_when_asked()
    {
        foreach (bool all in new[] { true, false })
        {
            torch.manual_seed(2);
            using var net = new MultiTaskNetwork(Net() with { TaskBlocks = BlockAttention.Window });   // window blocks: bias tables
            using var loss = new MultiTaskLoss("loss", TinyData.SegDepth);
            using (torch.no_grad()) loss.parameters().Single().fill_(0.5f);   // s_t ≠ 0, so that decay would show
            var before = net.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
            var sBefore = loss.parameters().Single().detach().clone();
            var options = new TrainingOptions { WeightDecay = 0.1, DecayAllParameters = all, Device = ComputeDevice.Cpu, MixedPrecision = false };
            using (var step = new TrainingStep(net, loss, options, torch.CPU))
            {
                step.Optimizer.ZeroGrad();        // zero gradients: Adam's update is 0, only the decay θ ← θ(1 − lr·λ) acts
                step.Optimizer.Step(0.5, 0);
            }
            var kept = new List<string>();
            foreach (var (name, p) in net.named_parameters())
            {
                bool exempt = !all && (p.dim() <= 1 || name.EndsWith(".bias") || name.EndsWith(".memorySlots") || name.EndsWith(".relative_position_bias_table"));
                TensorAssert.Close(before[name] * (exempt ? 1.0 : 0.95), p, 1e-7, $"{name} ({(exempt ? "kept" : "decayed")})");
                if (exempt) kept.Add(name);
            }
            TensorAssert.Close(sBefore * (all ? 0.95 : 1.0), loss.parameters().Single(), 1e-7, "s_t");
            if (!all)
            {
                Assert.IsTrue(kept.Any(n => n.EndsWith(".memorySlots")), "R_0 is among the kept parameters");
                Assert.IsTrue(kept.Any(n => n.EndsWith(".relative_position_bias_table")), "a relative position bias table is kept");
                Assert.IsTrue(kept.Any(n => n.Contains("norm", StringComparison.OrdinalIgnoreCase) && n.EndsWith(".weight")), "a norm's scale is kept");
                Assert.IsTrue(kept.Any(n => n.EndsWith(".bias")), "a bias is kept");
                Assert.IsLessThan(before.Count, kept.Count, "the matrices are still decayed");
            }
        }
    }

    [TestMethod]
    public void Presets_hold_the_spec_recipes()
    {
        var nyud = TrainingOptions.MtformerNyud;
        Assert.AreEqual((5e-5, 1e-4, 4, 100, 0, 0.9), (nyud.LearningRate, nyud.WeightDecay, nyud.BatchSize, nyud.Epochs, nyud.WarmupSteps, nyud.PolyPower));
        Assert.AreEqual(LearningRateDecay.PerEpoch, nyud.LearningRateDecay);
        Assert.AreEqual(10, nyud.ValidateLastEpochs);
        Assert.IsTrue(nyud.DecayAllParameters && nyud.KeepBest);
        Assert.AreEqual(LossWeighting.MtformerUncertainty, nyud.LossWeighting);
        Assert.AreSame(AugmentationOptions.Nyud, nyud.Augmentation, "the spec's NYUD augmentation");
        Assert.AreEqual(nyud with { LearningRate = 2.5e-5, Augmentation = AugmentationOptions.Pascal }, TrainingOptions.MtformerPascal);

        var invpt = TrainingOptions.InvPT(795);
        Assert.AreEqual((2e-5, 1e-6, 2, 101, LearningRateDecay.PerIteration, LossWeighting.Fixed),
            (invpt.LearningRate, invpt.WeightDecay, invpt.BatchSize, invpt.Epochs, invpt.LearningRateDecay, invpt.LossWeighting));
        Assert.AreEqual(16, TrainingOptions.InvPT(4998).Epochs, "PASCAL: 2499 steps/epoch × 16 ≈ 40k");

        var cpu = TrainingOptions.CpuSmall;
        Assert.AreEqual((3e-4, 1e-4, 200, 0.9, 8, 40), (cpu.LearningRate, cpu.WeightDecay, cpu.WarmupSteps, cpu.PolyPower, cpu.BatchSize, cpu.Epochs));
        Assert.AreEqual((ComputeDevice.Cpu, false, 5, (int?)null), (cpu.Device, cpu.MixedPrecision, cpu.ValidateEveryEpochs, cpu.ValidateLastEpochs));
        foreach (var preset in new[] { nyud, TrainingOptions.MtformerPascal, invpt, cpu }) preset.Validate();
        var (first, second) = (TrainingOptions.CpuSmall, TrainingOptions.CpuSmall);
        Assert.AreNotSame(first, second, "each read is a fresh record");
    }

    /// <summary>IProgress that calls back synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<TrainingProgress> onReport) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => onReport(value);
    }
}
