using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Training;

[TestClass]
public sealed class TrainingLoopTests
{
    private const int H = 32, W = 32;

    private static MultiTaskNetworkOptions Net(IReadOnlyList<TaskSpec> tasks, InteractionKind kind = InteractionKind.StableKem) =>
        MultiTaskNetworkOptions.Tiny(tasks.ToArray()) with
        {
            ImageHeight = H, ImageWidth = W, Width = 32, Heads = 2,
            Interaction = new InteractionOptions { Kind = kind, MemorySlots = 4, TopK = 3 },
        };

    private static readonly TrainingOptions Quick = new()
    {
        Epochs = 2, BatchSize = 4, LearningRate = 1e-3, WarmupSteps = 2, Device = ComputeDevice.Cpu, ReportEverySteps = 2,
    };

    private static MultiTaskNetwork Build(MultiTaskNetworkOptions o, int seed)
    {
        torch.manual_seed(seed);
        return new MultiTaskNetwork(o);
    }

    [TestMethod]
    public void Schedule_warms_up_linearly_then_decays_polynomially_to_zero()
    {
        var s = new LearningRateSchedule(1.0, TotalSteps: 110, WarmupSteps: 10, Power: 0.9);
        Assert.AreEqual(0.1, s.At(0), 1e-12);
        Assert.AreEqual(1.0, s.At(9), 1e-12);
        Assert.AreEqual(1.0, s.At(10), 1e-12);
        Assert.AreEqual(Math.Pow(0.5, 0.9), s.At(60), 1e-12);
        Assert.AreEqual(0.0, s.At(110), 1e-12);
    }

    [TestMethod]
    public void Same_seed_on_cpu_gives_identical_weights_and_losses()
    {
        var data = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 3);
        TrainingResult Run(out float[] weights)
        {
            using var net = Build(Net(TinyData.SegDepth), 7);
            var r = MultiTaskTrainingLoop.Fit(net, data, null, Quick);
            weights = net.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray();
            return r;
        }
        var a = Run(out var wa);
        var b = Run(out var wb);
        CollectionAssert.AreEqual(wa, wb);
        Assert.AreEqual(a.History[^1].TrainLoss, b.History[^1].TrainLoss);
        using var other = Build(Net(TinyData.SegDepth), 8);
        Assert.AreNotEqual(wa[0], other.parameters().First().data<float>()[0], "a different seed gives different weights");
    }

    [TestMethod]
    public void Live_tensor_count_stays_flat_across_steps()
    {
        var data = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 4);
        using var net = Build(Net(TinyData.SegDepth), 1);
        MultiTaskTrainingLoop.Fit(net, data, null, Quick with { Epochs = 1 }); // warm: optimizer state exists after a first run
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        MultiTaskTrainingLoop.Fit(net, data, null, Quick with { Epochs = 3 });
        long afterThree = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        MultiTaskTrainingLoop.Fit(net, data, null, Quick with { Epochs = 6 });
        long afterSix = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.AreEqual(afterThree - before, afterSix - afterThree, $"live tensors grew with the number of steps: {before} → {afterThree} → {afterSix}");
        Assert.IsLessThan(50L, afterSix - before, $"a fit leaked {afterSix - before} tensors");
    }

    [TestMethod]
    public void Progress_reports_epoch_step_losses_rate_and_validation()
    {
        var train = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 5);
        var valid = TinyData.Make(TinyData.SegDepth, 4, H, W, seed: 6);
        var reports = new List<TrainingProgress>();
        var lines = new List<string>();
        using var net = Build(Net(TinyData.SegDepth), 1);
        var result = MultiTaskTrainingLoop.Fit(net, train, valid, Quick, new SyncProgress(reports.Add), lines.Add);
        var trainReports = reports.Where(r => r.Phase == "train").ToList();
        Assert.HasCount(2, reports.Where(r => r.Phase == "validate").ToList());
        Assert.AreEqual(4, trainReports[^1].Step);
        Assert.AreEqual(4, trainReports[^1].TotalSteps);
        Assert.AreEqual(2, trainReports[^1].Epoch);
        CollectionAssert.AreEquivalent(new[] { "Segmentation", "Depth" }, trainReports[0].TaskLosses.Keys.ToArray());
        Assert.IsTrue(trainReports.All(r => r.ImagesPerSecond > 0 && r.LearningRate > 0 && double.IsFinite(r.Loss)));
        Assert.IsTrue(lines.Any(l => l.Contains("epoch 2/2") && l.Contains("img/s") && l.Contains("ETA")));
        Assert.AreEqual(result.History.Where(h => h.ValidationLoss is not null).MinBy(h => h.ValidationLoss!.Value)!.Epoch, result.BestEpoch);
        // On the CPU the loop gathers every batch itself: that time is its data wait, a small part of the run (the steps are the rest)
        Assert.IsTrue(result.DataWait > TimeSpan.Zero && result.DataWait < result.Elapsed / 4, $"data wait {result.DataWait} of {result.Elapsed}");
    }

    [TestMethod]
    public void Keep_best_restores_the_weights_that_gave_the_best_validation_loss()
    {
        var train = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 5);
        var valid = TinyData.Make(TinyData.SegDepth, 4, H, W, seed: 6);
        using var net = Build(Net(TinyData.SegDepth), 1);
        var result = MultiTaskTrainingLoop.Fit(net, train, valid, Quick with { Epochs = 3, LearningRate = 3e-3 });
        var (loss, _) = MultiTaskTrainingLoop.Validate(net, valid, 4, torch.CPU);
        Assert.AreEqual(result.BestValidationLoss!.Value, loss, 1e-4, "the network holds the best epoch's weights");
    }

    [TestMethod]
    public void Cancellation_stops_training_with_OperationCanceledException()
    {
        var data = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 7);
        using var net = Build(Net(TinyData.SegDepth), 1);
        using var cts = new CancellationTokenSource();
        int seen = 0;
        var progress = new SyncProgress(_ => { if (++seen == 1) cts.Cancel(); });
        Assert.ThrowsExactly<OperationCanceledException>(() =>
            MultiTaskTrainingLoop.Fit(net, data, null, Quick with { Epochs = 50 }, progress, null, cts.Token));
        Assert.AreEqual(1, seen);
    }

    [TestMethod]
    public void Labels_out_of_range_and_bad_pixels_are_named_before_training()
    {
        var good = TinyData.Make(TinyData.SegDepth, 2, H, W, seed: 1);
        var images = Enumerable.Range(0, 2).SelectMany(i => good.Image(i).ToArray()).ToArray();
        var seg = Enumerable.Range(0, 2).SelectMany(i => good.Label(0, i).ToArray()).ToArray();
        var depth = Enumerable.Range(0, 2).SelectMany(i => good.Label(1, i).ToArray()).ToArray();
        seg[H * W + 5] = 9; // class 9 of a 4-class task, in image 1
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new DenseDataset(TinyData.SegDepth, H, W, images, new[] { seg, depth }));
        StringAssert.Contains(e.Message, "'Segmentation', image 1: label 9");
        StringAssert.Contains(e.Message, "0..3 or 255");
        seg[H * W + 5] = 1;
        images[7] = float.NaN;
        var nan = Assert.ThrowsExactly<ArgumentException>(() => new DenseDataset(TinyData.SegDepth, H, W, images, new[] { seg, depth }));
        StringAssert.Contains(nan.Message, "image 0 has a non-finite pixel");
        var empty = Assert.ThrowsExactly<ArgumentException>(() => new DenseDataset(TinyData.SegDepth, H, W, Array.Empty<float>(), new[] { seg, depth }));
        StringAssert.Contains(empty.Message, "empty");
    }

    [TestMethod]
    public void Cuda_without_a_gpu_fails_with_the_fix()
    {
        if (torch.cuda.is_available()) Assert.Inconclusive("This machine has a GPU.");
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Devices.Resolve(ComputeDevice.Cuda));
        StringAssert.Contains(e.Message, "Device = Auto or Cpu");
        Assert.AreEqual(DeviceType.CPU, Devices.Resolve(ComputeDevice.Auto).type);
    }

    [TestMethod]
    [DataRow(InteractionKind.StableKem)]
    [DataRow(InteractionKind.CrossAttention)]
    public void Fit_on_tiny_data_beats_the_trivial_baseline(InteractionKind kind)
    {
        var tasks = new[] { TinyData.Segmentation, TinyData.Depth, TinyData.Normals };
        var train = TinyData.Make(tasks, 48, H, W, seed: 11);
        var test = TinyData.Make(tasks, 12, H, W, seed: 12);
        using var net = Build(Net(tasks, kind), 3);
        var (model, baseline) = TinyData.AssertFitBeatsBaseline(net, train, test,
            Quick with { Epochs = 12, BatchSize = 8, LearningRate = 2e-3, WarmupSteps = 5 }, depthFactor: 0.7);
        Assert.IsLessThan(((NormalsMetrics)baseline[2]).MeanAngle * 0.7, ((NormalsMetrics)model[2]).MeanAngle);
    }

    /// <summary>IProgress that calls back synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<TrainingProgress> onReport) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => onReport(value);
    }
}

[TestClass]
public sealed class MixedPrecisionTests
{
    [TestMethod]
    public void Bf16_training_keeps_fp32_masters_and_returns_an_fp32_network_that_learned()
    {
        var tasks = TinyData.SegDepth;
        var train = TinyData.Make(tasks, 16, 32, 32, seed: 31);
        torch.manual_seed(5);
        using var net = new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(tasks) with
        {
            ImageHeight = 32, ImageWidth = 32, Width = 32, Heads = 2, Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4 },
        });
        var before = net.parameters().First().data<float>().ToArray();
        var options = new TrainingOptions
        {
            Epochs = 3, BatchSize = 8, LearningRate = 2e-3, WarmupSteps = 1, Device = ComputeDevice.Cpu, MixedPrecision = true, MixedPrecisionOnCpu = true,
        };
        var lines = new List<string>();
        var result = MultiTaskTrainingLoop.Fit(net, train, null, options, log: lines.Add);
        StringAssert.Contains(lines[0], "bf16, fp32 master weights");
        Assert.IsTrue(net.parameters().All(p => p.dtype == ScalarType.Float32), "the network is handed back in fp32");
        Assert.IsTrue(net.named_buffers().Where(b => b.buffer.is_floating_point()).All(b => b.buffer.dtype == ScalarType.Float32));
        CollectionAssert.AreNotEqual(before, net.parameters().First().data<float>().ToArray(), "weights moved");
        var first = net.parameters().First();
        using (var rounded = first.to(ScalarType.BFloat16).to(ScalarType.Float32))
            Assert.IsTrue(first.ne(rounded).any().item<bool>(), "the fp32 masters come back, not bf16-rounded weights");
        Assert.IsLessThan(result.History[0].TrainLoss, result.History[^1].TrainLoss, "loss fell");
    }

    [TestMethod]
    public void Loss_module_follows_Module_to()
    {
        using var loss = new MultiTaskLoss("loss", TinyData.SegDepth);
        loss.to(ScalarType.Float64);
        using var scope = torch.NewDisposeScope();
        var total = loss.forward(new[] { torch.tensor(1.0), torch.tensor(2.0) });
        Assert.AreEqual(ScalarType.Float64, total.dtype);
        Assert.AreEqual(30.0, total.item<double>(), 1e-9); // 1·10·1 + 1·10·2 with s = 0
    }
}
