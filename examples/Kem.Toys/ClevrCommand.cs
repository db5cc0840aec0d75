using Microsoft.ML.Kem.Training;
using System.Diagnostics;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Toys;

namespace Kem.Toys;

/// <summary>
/// Paper Table 1 (MODEL-SPEC §13): KEM and sKEM trained on a balanced and on a long-tailed (power law, exponent 2)
/// Sort-of-CLEVR split, tested on balanced questions. Prints the 2×2 accuracy table beside the paper's. With
/// --max-seconds, the training runs share that wall-clock budget and each stops early, is evaluated, and reports how many
/// epochs it got.
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
        double maxSeconds = options.Double("max-seconds", 0);
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
            FrontEnd = options.Enum("front", ClevrFrontEnd.Patches), Dropout = options.Double("dropout", 0.1),
            Interaction = new InteractionOptions { MemorySlots = options.Int("slots", 8), TopK = options.Int("topk", 5), EtfMode = etf },
        };
        options.RejectUnknown(Usage.Clevr);
        if (maxSeconds < 0) throw new ArgumentOutOfRangeException("max-seconds", maxSeconds, "--max-seconds must be ≥ 0 (0: no budget).");
        var budget = Stopwatch.StartNew();

        Console.WriteLine($"== Sort-of-CLEVR: {training.TrainImages} train / {training.TestImages} test images × 10 questions per family; {training.Epochs} epochs, " +
                          $"batch {training.BatchSize}, Adam {training.LearningRate}; model d {model.Width}, h {model.Heads}, MLP ×{model.MlpRatio}, " +
                          $"blocks {model.ImageDepth}/{model.EncoderDepth}/{model.DecoderDepth}, dropout {model.Dropout}, {model.FrontEnd}; m {model.Interaction.MemorySlots}, k {model.Interaction.TopK}, " +
                          $"sKEM {etf}; long tail P(r) ∝ r^-{exponent}; seeds {string.Join(",", seeds)}; {training.Device}" +
                          (maxSeconds > 0 ? $"; budget {maxSeconds:F0} s in all" : ""));
        var generation = Stopwatch.StartNew();
        var data = new SortOfClevrOptions { Seed = dataSeed, Exponent = exponent };
        var test = SortOfClevrExperiment.TestSplit(data, training.TestImages);
        var trains = laws.ToDictionary(law => law, law => SortOfClevrExperiment.TrainSplit(data with { ColourLaw = law }, training.TrainImages));
        var device = Devices.Resolve(training.Device);
        using var testData = new SortOfClevrBatches(test, device);
        var trainData = trains.ToDictionary(pair => pair.Key, pair => new SortOfClevrBatches(pair.Value, device));
        Console.WriteLine($"  generated the splits and copied them to {device.type} in {generation.Elapsed.TotalSeconds:F1} s");
        foreach (var (law, split) in trains)
        {
            var counts = new double[SortOfClevr.Colours];
            foreach (var q in split.AllQuestions) counts[q.ColourA]++;
            Console.WriteLine($"  {law} training split, colour of A: " + string.Join(", ", counts.Select((c, i) => $"{SortOfClevr.ColourNames[i]} {100 * c / split.AllQuestions.Count:F1} %")));
        }

        foreach (var (law, split) in trains)
            Console.WriteLine($"  question-prior baseline (most frequent {law} training answer per family and subtype, image unseen): {100 * SortOfClevrExperiment.QuestionPrior(split, test):F1} %");

        var results = new Dictionary<(InteractionKind, ClevrColourLaw), List<SortOfClevrResult>>();
        int runsLeft = seeds.Length * laws.Length * methods.Length;
        double firstShare = TrainingFraction * (maxSeconds - budget.Elapsed.TotalSeconds) / runsLeft, lastEvaluation = 0;
        foreach (var seed in seeds)
            foreach (var law in laws)
                foreach (var method in methods)
                {
                    var options1 = model with { Interaction = model.Interaction with { Kind = method } };
                    var recipe = training with { Seed = seed, MaxTrainingTime = maxSeconds > 0 ? TrainingShare(firstShare, maxSeconds - budget.Elapsed.TotalSeconds, runsLeft, lastEvaluation) : null };
                    Console.WriteLine($"  seed {seed} {Name(method)} {law}" + (recipe.MaxTrainingTime is { } share ? $", training budget {share.TotalSeconds:F1} s:" : ":"));
                    var result = SortOfClevrExperiment.Run(trainData[law], testData, options1, recipe, Console.WriteLine);
                    (results.TryGetValue((method, law), out var list) ? list : results[(method, law)] = []).Add(result);
                    runsLeft--;
                    lastEvaluation = (result.Elapsed - result.TrainingTime).TotalSeconds;
                    Console.WriteLine($"  seed {seed} {Name(method),-4} {law,-8}: accuracy {100 * result.Accuracy:F1} % (families {string.Join(" / ", result.FamilyAccuracy.Select(a => $"{100 * a:F1}"))}), " +
                                      $"train loss {result.FinalTrainLoss:F3}, {result.Steps} steps = {result.Epochs:0.##} epochs " +
                                      $"({result.Steps / result.TrainingTime.TotalSeconds:F1} steps/s), training {result.TrainingTime.TotalSeconds:F0} s + evaluation {lastEvaluation:F0} s");
                }
        foreach (var examples in trainData.Values) examples.Dispose();

        if (results.Count == 0) return 0;
        Console.WriteLine();
        Console.WriteLine("Test accuracy on balanced questions (mean ± std over seeds, %), beside the paper's Table 1, and the training each model got:");
        Console.WriteLine($"  | method | trained on | ours | paper | epochs (of {training.Epochs}) | steps |");
        Console.WriteLine("  |---|---|---|---|---|---|");
        foreach (var law in laws)
            foreach (var method in methods)
            {
                var list = results[(method, law)];
                Console.WriteLine($"  | {Name(method)} | {(law == ClevrColourLaw.Balanced ? "balanced" : $"long-tailed (r^-{exponent})")} | " +
                                  $"{Stats.Percent(list.Select(r => r.Accuracy).ToArray())} | {(Paper.TryGetValue((method, law), out var p) ? $"{p}" : "–")} | " +
                                  $"{Span(list.Select(r => r.Epochs), "0.##")} | {Span(list.Select(r => (double)r.Steps), "0")} |");
            }
        if (results.Values.SelectMany(l => l).Any(r => r.Epochs < training.Epochs))
            Console.WriteLine($"  Stopped by --max-seconds {maxSeconds:F0}: the models above trained for fewer than {training.Epochs} epochs (per seed: min–max).");
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

    /// <summary>Share of a run's part of the budget that goes to training; the rest is left for its evaluation.</summary>
    private const double TrainingFraction = 0.9;

    /// <summary>
    /// Training time of the next run under --max-seconds: the first run's share (90 % of an equal part of the budget), so
    /// that all runs train equally long; less when what is left of the budget, minus the previous run's evaluation time
    /// (the next evaluation takes about as long), is smaller, so that all runs with their evaluations fit the budget.
    /// </summary>
    private static TimeSpan TrainingShare(double firstShare, double secondsLeft, int runsLeft, double evaluationSeconds) =>
        TimeSpan.FromSeconds(Math.Max(0, Math.Min(firstShare, secondsLeft / runsLeft - evaluationSeconds)));

    /// <summary>"a" when all values agree, "a–b" (min–max) otherwise.</summary>
    private static string Span(IEnumerable<double> values, string format)
    {
        var list = values.ToList();
        string Text(double v) => v.ToString(format, System.Globalization.CultureInfo.InvariantCulture);
        return list.Min() == list.Max() ? Text(list[0]) : $"{Text(list.Min())}–{Text(list.Max())}";
    }
}
