using Microsoft.ML.Kem.Training;
using System.Diagnostics;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Toys;

namespace Kem.Toys;

/// <summary>
/// Paper Table 1 (MODEL-SPEC §13): KEM and sKEM trained on a balanced and on a long-tailed (power law, exponent 2)
/// Sort-of-CLEVR split, tested on balanced questions. Prints the 2×2 accuracy table beside the paper's.
/// </summary>
internal static class ClevrCommand
{
    private static readonly Dictionary<(InteractionKind, ClevrColourLaw), int> Paper = new()
    {
        [(InteractionKind.Kem, ClevrColourLaw.Balanced)] = 81, [(InteractionKind.StableKem, ClevrColourLaw.Balanced)] = 79,
        [(InteractionKind.Kem, ClevrColourLaw.LongTail)] = 71, [(InteractionKind.StableKem, ClevrColourLaw.LongTail)] = 79,
    };

    public static int Run(CommandLine options)
    {
        var training = new SortOfClevrTrainingOptions
        {
            TrainImages = options.Int("train-images", 10_000), TestImages = options.Int("test-images", 2_000),
            Epochs = options.Int("epochs", 100), BatchSize = options.Int("batch", 64), LearningRate = options.Double("lr", 1e-4),
            Device = options.Enum("device", ComputeDevice.Cpu),
        };
        var seeds = options.Ints("seeds", "1,2,3,4,5");
        var methods = options.Enums<InteractionKind>("methods", "Kem,StableKem");
        var laws = options.Enums<ClevrColourLaw>("splits", "Balanced,LongTail");
        double exponent = options.Double("exponent", 2.0);
        int dataSeed = options.Int("data-seed", 0);
        var etf = options.Enum("etf", EtfMode.TaskVertices);
        var model = new SortOfClevrModelOptions
        {
            Width = options.Int("width", 256), Heads = options.Int("heads", 4), MlpRatio = options.Int("mlp-ratio", 2),
            ImageDepth = options.Int("image-depth", 2), EncoderDepth = options.Int("encoder-depth", 2), DecoderDepth = options.Int("decoder-depth", 1),
            FrontEnd = options.Enum("front", ClevrFrontEnd.Patches),
            Interaction = new InteractionOptions { MemorySlots = options.Int("slots", 8), TopK = options.Int("topk", 5), EtfMode = etf },
        };
        options.RejectUnknown(Usage.Clevr);

        Console.WriteLine($"== Sort-of-CLEVR: {training.TrainImages} train / {training.TestImages} test images × 10 questions per family; {training.Epochs} epochs, " +
                          $"batch {training.BatchSize}, Adam {training.LearningRate}; model d {model.Width}, h {model.Heads}, MLP ×{model.MlpRatio}, " +
                          $"blocks {model.ImageDepth}/{model.EncoderDepth}/{model.DecoderDepth}, {model.FrontEnd}; m {model.Interaction.MemorySlots}, k {model.Interaction.TopK}, " +
                          $"sKEM {etf}; long tail P(r) ∝ r^-{exponent}; seeds {string.Join(",", seeds)}");
        var generation = Stopwatch.StartNew();
        var data = new SortOfClevrOptions { Seed = dataSeed, Exponent = exponent };
        var test = SortOfClevrExperiment.TestSplit(data, training.TestImages);
        var trains = laws.ToDictionary(law => law, law => SortOfClevrExperiment.TrainSplit(data with { ColourLaw = law }, training.TrainImages));
        Console.WriteLine($"  generated the splits in {generation.Elapsed.TotalSeconds:F1} s");
        foreach (var (law, split) in trains)
        {
            var counts = new double[SortOfClevr.Colours];
            foreach (var q in split.AllQuestions) counts[q.ColourA]++;
            Console.WriteLine($"  {law} training split, colour of A: " + string.Join(", ", counts.Select((c, i) => $"{SortOfClevr.ColourNames[i]} {100 * c / split.AllQuestions.Count:F1} %")));
        }

        foreach (var (law, split) in trains)
            Console.WriteLine($"  question-prior baseline (most frequent {law} training answer per family and subtype, image unseen): {100 * SortOfClevrExperiment.QuestionPrior(split, test):F1} %");

        var results = new Dictionary<(InteractionKind, ClevrColourLaw), List<SortOfClevrResult>>();
        foreach (var seed in seeds)
            foreach (var law in laws)
                foreach (var method in methods)
                {
                    var options1 = model with { Interaction = model.Interaction with { Kind = method } };
                    var result = SortOfClevrExperiment.Run(trains[law], test, options1, training with { Seed = seed });
                    (results.TryGetValue((method, law), out var list) ? list : results[(method, law)] = []).Add(result);
                    Console.WriteLine($"  seed {seed} {Name(method),-4} {law,-8}: accuracy {100 * result.Accuracy:F1} % (families {string.Join(" / ", result.FamilyAccuracy.Select(a => $"{100 * a:F1}"))}), " +
                                      $"train loss {result.FinalTrainLoss:F3}, {result.Steps} steps, {result.Elapsed.TotalSeconds:F0} s");
                }

        if (results.Count == 0) return 0;
        Console.WriteLine();
        Console.WriteLine("Test accuracy on balanced questions (mean ± std over seeds, %), beside the paper's Table 1:");
        Console.WriteLine("  | method | trained on | ours | paper |");
        Console.WriteLine("  |---|---|---|---|");
        foreach (var law in laws)
            foreach (var method in methods)
                Console.WriteLine($"  | {Name(method)} | {(law == ClevrColourLaw.Balanced ? "balanced" : $"long-tailed (r^-{exponent})")} | " +
                                  $"{Stats.Percent(results[(method, law)].Select(r => r.Accuracy).ToArray())} | {(Paper.TryGetValue((method, law), out var p) ? $"{p}" : "–")} |");
        Console.WriteLine();
        Console.WriteLine("Per family (non-relational / binary / ternary) and per colour of A (red … yellow), mean over seeds, %:");
        foreach (var ((method, law), list) in results)
        {
            string Mean(Func<SortOfClevrResult, double[]> pick, int i) => $"{100 * list.Average(r => pick(r)[i]):F1}";
            Console.WriteLine($"  {Name(method),-4} {law,-8}: families {Mean(r => r.FamilyAccuracy, 0)} / {Mean(r => r.FamilyAccuracy, 1)} / {Mean(r => r.FamilyAccuracy, 2)}; " +
                              $"colours {string.Join(" ", Enumerable.Range(0, SortOfClevr.Colours).Select(i => Mean(r => r.ColourAccuracy, i)))}");
        }
        Console.WriteLine($"  Wall time of the {results.Values.Sum(l => l.Count)} training runs: {results.Values.SelectMany(l => l).Sum(r => r.Elapsed.TotalSeconds):F0} s.");
        return 0;
    }

    private static string Name(InteractionKind kind) => kind == InteractionKind.StableKem ? "sKEM" : kind.ToString();
}
