using Microsoft.ML.Kem;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Training;
using TorchSharp;

namespace Kem.Tests.Modeling;

[TestClass]
public sealed class InferenceTests
{
    private const int H = 32, W = 32, Images = 4;

    private static CollectionProbe Build(int seed)
    {
        torch.manual_seed(seed);
        return new CollectionProbe(new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(TinyData.SegDepth) with
        {
            ImageHeight = H, ImageWidth = W, Width = 32, Heads = 2,
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 },
        }));
    }

    private static bool SameScores(TaskPrediction[] a, TaskPrediction[] b) =>
        a.Zip(b).All(p => p.First.Scores.AsSpan().SequenceEqual(p.Second.Scores) &&
                          (p.First.Labels ?? []).AsSpan().SequenceEqual(p.Second.Labels ?? []));

    [TestMethod]
    public void Scoring_threads_beside_a_training_loop_run_no_collection_inside_a_forward_and_match_single_threaded_scores()
    {
        const int Scorers = 3;
        var data = TinyData.Make(TinyData.SegDepth, 16, H, W, seed: 5);
        var images = new float[Images * 3 * H * W];
        for (int i = 0; i < Images; i++) data.Image(i).CopyTo(images.AsSpan(i * 3 * H * W));
        using var reference = Build(11);
        var expected = Inference.Predict(reference, images, Images);
        var scorers = Enumerable.Range(0, Scorers).Select(_ => Build(11)).ToArray();   // the same weights, one network per thread
        using var trainee = Build(12);

        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        int rounds = 0, mismatches = 0;
        bool trained = false;
        using (var pressure = new AllocationPressure())
        {
            var training = new Thread(() =>
            {
                try
                {
                    MultiTaskTrainingLoop.Fit(trainee, data, null, new TrainingOptions
                    {
                        Epochs = 2, BatchSize = 4, LearningRate = 1e-3, WarmupSteps = 2, Device = ComputeDevice.Cpu, ReportEverySteps = 100,
                    });
                }
                catch (Exception e) { failures.Enqueue(e); }
                finally { Volatile.Write(ref trained, true); }
            });
            var scoring = scorers.Select(network => new Thread(() =>
            {
                try
                {
                    // Until the loop has trained and the pressure has spent a whole budget (so regions were renewed under it).
                    while (!Volatile.Read(ref trained) || pressure.Allocated < NativeCallGuard.Budget)
                    {
                        if (!SameScores(expected, Inference.Predict(network, images, Images))) Interlocked.Increment(ref mismatches);
                        Interlocked.Increment(ref rounds);
                    }
                }
                catch (Exception e) { failures.Enqueue(e); }
            })).ToArray();
            training.Start();
            foreach (var t in scoring) t.Start();
            training.Join();
            foreach (var t in scoring) t.Join();
        }

        Assert.IsEmpty(failures, string.Join("\n", failures));
        Assert.AreEqual(0, mismatches, $"of {rounds} concurrent predictions");
        Assert.IsGreaterThan(Scorers, rounds);
        foreach (var probe in scorers.Append(trainee))
        {
            Assert.IsGreaterThan(0, probe.Forwards);
            Assert.AreEqual(0, probe.Disturbed, $"forwards with a collection inside, of {probe.Forwards}");
        }
        Assert.AreEqual(0, NativeCallGuard.Leases);
        foreach (var s in scorers) s.Dispose();
    }
}
