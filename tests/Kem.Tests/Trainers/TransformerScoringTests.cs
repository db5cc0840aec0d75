using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Kem;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Runtime;
using TorchSharp;
using Row = Kem.Tests.Trainers.TrainerPipelineTests.Row;
using Prediction = Kem.Tests.Trainers.TrainerPipelineTests.Prediction;

namespace Kem.Tests.Trainers;

[TestClass]
public sealed class TransformerScoringTests
{
    private const int H = 32, W = 32;

    [TestMethod]
    public void Prediction_engines_on_several_threads_run_no_collection_inside_a_forward_and_match_single_threaded_scores()
    {
        const int Threads = 3, Rows = 4;
        var ml = new MLContext(seed: 1);
        torch.manual_seed(3);
        using var probe = new CollectionProbe(new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(TinyData.SegDepth) with
        {
            ImageHeight = H, ImageWidth = W, Width = 32, Heads = 2,
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 3 },
        }));
        var model = new MultiTaskKemTransformer(((IHostEnvironment)ml).Register("probe"), probe, "Image",
            [new TaskColumn(TinyData.Segmentation), new TaskColumn(TinyData.Depth)], result: null);
        var data = TinyData.Make(TinyData.SegDepth, Rows, H, W, seed: 4);
        var rows = Enumerable.Range(0, Rows).Select(i => new Row { Image = data.Image(i).ToArray() }).ToArray();
        var single = ml.Model.CreatePredictionEngine<Row, Prediction>(model);
        var expected = rows.Select(r => single.Predict(r)).ToArray();

        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        int predictions = 0, mismatches = 0;
        using (var pressure = new AllocationPressure())
        {
            var threads = Enumerable.Range(0, Threads).Select(_ => new Thread(() =>
            {
                try
                {
                    var engine = ml.Model.CreatePredictionEngine<Row, Prediction>(model);   // PredictionEngine: one per thread
                    while (pressure.Allocated < NativeCallGuard.Budget)
                        for (int i = 0; i < Rows; i++)
                        {
                            var p = engine.Predict(rows[i]);
                            if (!p.SegmentationScore.SequenceEqual(expected[i].SegmentationScore) || !p.DepthScore.SequenceEqual(expected[i].DepthScore)
                                || !p.SegmentationPredictedLabel.SequenceEqual(expected[i].SegmentationPredictedLabel))
                                Interlocked.Increment(ref mismatches);
                            Interlocked.Increment(ref predictions);
                        }
                }
                catch (Exception e) { failures.Enqueue(e); }
            })).ToArray();
            foreach (var t in threads) t.Start();
            foreach (var t in threads) t.Join();
        }

        Assert.IsEmpty(failures, string.Join("\n", failures));
        Assert.AreEqual(0, mismatches, $"of {predictions} concurrent predictions");
        Assert.AreEqual(0, probe.Disturbed, $"forwards with a collection inside, of {probe.Forwards}");
        Assert.AreEqual(0, NativeCallGuard.Leases);
    }
}
