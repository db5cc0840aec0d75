using Kem.Tests.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;

namespace Kem.Tests.Training;

/// <summary>TrainingOptions.CheckpointPath: a fit stopped after an epoch goes on from its checkpoint to the same end.</summary>
[TestClass]
public sealed class CheckpointTests
{
    private const int H = 32, W = 32;
    private static readonly DenseDataset Train = TinyData.Make(TinyData.SegDepth, 8, H, W, seed: 3);
    private static readonly DenseDataset Val = TinyData.Make(TinyData.SegDepth, 4, H, W, seed: 4);

    // DWA reads the first two epochs' task losses in the third; the flip-and-warp augmentation draws per image; keep-best
    // snapshots a validated epoch: all of it has to come back from the checkpoint or be replayed.
    private static TrainingOptions Recipe(string checkpoint, bool bf16 = false) => new()
    {
        Epochs = 3, BatchSize = 4, LearningRate = 1e-3, WarmupSteps = 1, Device = ComputeDevice.Cpu, ReportEverySteps = 1,
        LossWeighting = LossWeighting.Dwa, KeepBest = true, CheckpointPath = checkpoint, MixedPrecisionOnCpu = bf16,
        Augmentation = new AugmentationOptions { Flip = true, MinScale = 0.9f, MaxScale = 1.1f, MaxRotationDegrees = 5f },
    };

    private static MultiTaskNetwork Network(int seed)
    {
        torch.manual_seed(seed);
        return new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(TinyData.SegDepth) with
        {
            ImageHeight = H, ImageWidth = W, Width = 32, Heads = 2,
            Interaction = new InteractionOptions { Kind = InteractionKind.StableKem, MemorySlots = 4, TopK = 3 },
        });
    }

    private static float[] Weights(torch.nn.Module network) =>
        network.state_dict().Values.Where(t => t.is_floating_point()).SelectMany(t => t.to(torch.ScalarType.Float32).data<float>().ToArray()).ToArray();

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void A_fit_stopped_in_epoch_3_resumes_from_epoch_2_to_the_same_weights_and_history(bool bf16)
    {
        using var folder = new TempFolder();
        TrainingResult whole;
        float[] expected;
        using (var network = Network(7))
        {
            whole = MultiTaskTrainingLoop.Fit(network, Train, Val, Recipe(folder.File("whole.safetensors"), bf16));
            expected = Weights(network);
        }

        string path = Path.Combine(folder.Path, "runs", "stopped.safetensors");   // the folder is made by the fit
        using (var network = Network(7))
        using (var cancel = new CancellationTokenSource())
            Assert.ThrowsExactly<OperationCanceledException>(() =>
                MultiTaskTrainingLoop.Fit(network, Train, Val, Recipe(path, bf16), new CancelAt(3, cancel), cancellation: cancel.Token));
        Assert.IsTrue(File.Exists(path), "written after epochs 1 and 2");
        Assert.IsFalse(File.Exists(path + ".tmp"));

        using (var network = Network(99))   // other initial weights: everything trained must come from the file
        {
            var resumed = MultiTaskTrainingLoop.Fit(network, Train, Val, Recipe(path, bf16));
            Assert.AreEqual(2, resumed.ResumedAfterEpoch);
            Assert.AreEqual(whole.Steps, resumed.Steps);
            Assert.AreEqual(whole.BestEpoch, resumed.BestEpoch);
            Assert.AreEqual(whole.BestValidationLoss, resumed.BestValidationLoss);
            CollectionAssert.AreEqual(whole.History.Select(e => (e.Epoch, e.TrainLoss, e.ValidationLoss)).ToArray(),
                resumed.History.Select(e => (e.Epoch, e.TrainLoss, e.ValidationLoss)).ToArray());
            CollectionAssert.AreEqual(whole.History[^1].DwaWeights!.ToArray(), resumed.History[^1].DwaWeights!.ToArray(), "DWA's third-epoch weights");
            CollectionAssert.AreEqual(expected, Weights(network), "the same weights as the uninterrupted fit");

            // A finished run's checkpoint: fitting again returns at once with the saved weights.
            using var again = Network(5);
            var repeat = MultiTaskTrainingLoop.Fit(again, Train, Val, Recipe(path, bf16));
            Assert.AreEqual((3, whole.Steps, 3), (repeat.ResumedAfterEpoch, repeat.Steps, repeat.History.Count));
            CollectionAssert.AreEqual(expected, Weights(again));
        }
    }

    [TestMethod]
    public void Another_runs_or_a_corrupt_checkpoint_is_refused_by_name_and_left_as_it_is()
    {
        using var folder = new TempFolder();
        string path = folder.File("run.safetensors");
        using (var network = Network(7))
            MultiTaskTrainingLoop.Fit(network, Train, null, Recipe(path) with { Epochs = 1, Augmentation = AugmentationOptions.None });
        var saved = File.ReadAllBytes(path);

        using (var network = Network(7))
        {
            var other = Assert.ThrowsExactly<InvalidOperationException>(() =>
                MultiTaskTrainingLoop.Fit(network, Train, null, Recipe(path) with { Epochs = 1, BatchSize = 2, Augmentation = AugmentationOptions.None }));
            StringAssert.Contains(other.Message, path);
            StringAssert.Contains(other.Message, "BatchSize: 4 there, 2 now");
            Assert.DoesNotContain("Epochs", other.Message, "only what differs");
        }
        using (var network = Network(7))
        {
            var augmented = Assert.ThrowsExactly<InvalidOperationException>(() =>
                MultiTaskTrainingLoop.Fit(network, Train, null, Recipe(path) with { Epochs = 1, Augmentation = AugmentationOptions.Nyud }));
            StringAssert.Contains(augmented.Message, "Augmentation: flip False, scales 1–1, rotation 0° there, flip True, scales [1, 1.2, 1.5], rotation 0° now");
        }
        CollectionAssert.AreEqual(saved, File.ReadAllBytes(path), "a refused checkpoint is not touched");

        File.WriteAllBytes(path, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        using (var network = Network(7))
        {
            var corrupt = Assert.ThrowsExactly<InvalidDataException>(() =>
                MultiTaskTrainingLoop.Fit(network, Train, null, Recipe(path) with { Epochs = 1, Augmentation = AugmentationOptions.None }));
            StringAssert.Contains(corrupt.Message, path);
        }
        CollectionAssert.AreEqual(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, File.ReadAllBytes(path));

        Assert.ThrowsExactly<ArgumentException>(() => (Recipe(folder.Path)).Validate(), "a folder is not a checkpoint file");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => (Recipe(path) with { CheckpointEveryEpochs = 0 }).Validate());
    }
}
