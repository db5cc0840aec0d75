using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Toys;

namespace Kem.Toys;

/// <summary>
/// Paper Fig. 1 (MODEL-SPEC §14): tasks 1 and 2 need each other, task 3 is pure noise. Trains the single-head attention
/// model (CA) and the KEM model, each with and without the noise task, and prints how much of what the real tasks read
/// comes from noise tokens, and their held-out error.
/// </summary>
internal static class NoiseCommand
{
    /// <summary>The options of one `noise` command; the defaults are MODEL-SPEC §14's protocol (5 seeds, σ ∈ {0, 0.5, 1}).</summary>
    internal sealed record Settings(NoiseToyTrainingOptions Training, int[] Seeds, double[] Sigmas, int Slots, int TopK, float PositionStd,
        NoiseToyInteraction[] Interactions, int[] TaskCounts);

    /// <summary>Reads the `noise` options; unknown ones are an error.</summary>
    internal static Settings Parse(CommandLine options)
    {
        var training = new NoiseToyTrainingOptions
        {
            Steps = options.Int("steps", 3000), BatchSize = options.Int("batch", 64), LearningRate = options.Double("lr", 1e-3),
            EvaluationSamples = options.Int("eval", 1000),
        };
        var seeds = options.Ints("seeds", "1,2,3,4,5");            // MODEL-SPEC §14: 5 seeds
        var sigmas = options.Doubles("hidden-noise", "0,0.5,1");    // MODEL-SPEC §14: HiddenNoise σ ∈ {0, 0.5, 1}
        int slots = options.Int("slots", 4), topK = options.Int("topk", 4);
        float positionStd = (float)options.Double("position-std", 1.0);
        var interactions = options.Enums<NoiseToyInteraction>("interactions", "CrossAttention,Kem");
        var taskCounts = options.Ints("tasks", "3,2");
        options.RejectUnknown(Usage.Noise);
        return new Settings(training, seeds, sigmas, slots, topK, positionStd, interactions, taskCounts);
    }

    public static int Run(CommandLine options)
    {
        var (training, seeds, sigmas, slots, topK, positionStd, interactions, taskCounts) = Parse(options);

        foreach (var sigma in sigmas)
        {
            Console.WriteLine();
            Console.WriteLine($"== Noise toy: n 16, d 32, 2 layers, h 1; KEM m {slots}, k {topK}; {training.Steps} steps × batch {training.BatchSize}, Adam {training.LearningRate}; " +
                              $"positions init std {positionStd}; hidden-state noise σ {sigma}; seeds {string.Join(",", seeds)}; {training.EvaluationSamples} held-out samples");
            var results = new List<NoiseToyResult>();
            foreach (var seed in seeds)
                foreach (var interaction in interactions)
                    foreach (var tasks in taskCounts)
                    {
                        var model = new NoiseToyModelOptions { Interaction = interaction, Tasks = tasks, MemorySlots = slots, TopK = topK, HiddenNoise = (float)sigma, PositionStd = positionStd };
                        var result = NoiseToyExperiment.Run(new NoiseToyOptions { Seed = seed }, model, training with { Seed = seed });
                        results.Add(result);
                        Console.WriteLine($"  seed {seed} {Name(interaction),-4} {(tasks == 3 ? "with" : "without"),-7} noise task: MSE {result.Mse[0]:F4} / {result.Mse[1]:F4}, " +
                                          $"R² {result.RSquared[0]:F3} / {result.RSquared[1]:F3} ({result.Elapsed.TotalSeconds:F0} s)");
                    }
            if (interactions.Length == 2 && taskCounts.Contains(3) && taskCounts.Contains(2)) Print(results, training.Steps);
        }
        return 0;
    }

    private static string Name(NoiseToyInteraction interaction) => interaction == NoiseToyInteraction.Kem ? "KEM" : "CA";

    private static void Print(List<NoiseToyResult> results, int steps)
    {
        IEnumerable<NoiseToyResult> Runs(NoiseToyInteraction i, bool noise) => results.Where(r => r.Interaction == i && r.WithNoiseTask == noise);
        var ca = Runs(NoiseToyInteraction.CrossAttention, true).ToArray();
        var kem = Runs(NoiseToyInteraction.Kem, true).ToArray();
        int layers = ca[0].NoiseShare.Length;

        Console.WriteLine();
        Console.WriteLine("Share of what each real task reads that comes from the noise task's tokens (mean ± std over seeds, %):");
        Console.WriteLine("  uniform attention over 3 tasks = 33.3 %; paper Fig. 1b (cross-attention) ≈ 20 %.");
        Console.WriteLine($"  | layer | task | CA: attention on noise | KEM: effective weight on noise | KEM: retrieved memory from noise | KEM: top-k picks that are noise |");
        Console.WriteLine($"  |---|---|---|---|---|---|");
        for (int l = 0; l < layers; l++)
            for (int t = 0; t < 2; t++)
                Console.WriteLine($"  | {l + 1} | {t + 1} | {Stats.Percent(ca.Select(r => r.NoiseShare[l][t]).ToArray())} | {Stats.Percent(kem.Select(r => r.NoiseShare[l][t]).ToArray())} | " +
                                  (t == 0 ? $"{Stats.Percent(kem.Select(r => r.RetrievedNoiseShare[l]).ToArray())} | {Stats.Percent(kem.Select(r => r.PickedNoiseFraction[l]).ToArray())} |" : "″ | ″ |"));

        Console.WriteLine();
        Console.WriteLine($"Held-out error per real task after {steps} steps (MSE, and R² = 1 − MSE/Var(Y); mean ± std over seeds):");
        Console.WriteLine("  | model | noise task | task 1 MSE | task 2 MSE | task 1 R² | task 2 R² |");
        Console.WriteLine("  |---|---|---|---|---|---|");
        foreach (var interaction in new[] { NoiseToyInteraction.CrossAttention, NoiseToyInteraction.Kem })
            foreach (var noise in new[] { true, false })
            {
                var runs = Runs(interaction, noise).ToArray();
                Console.WriteLine($"  | {Name(interaction)} | {(noise ? "with" : "without")} | {Stats.Plain(runs.Select(r => r.Mse[0]).ToArray())} | {Stats.Plain(runs.Select(r => r.Mse[1]).ToArray())} | " +
                                  $"{Stats.Plain(runs.Select(r => r.RSquared[0]).ToArray())} | {Stats.Plain(runs.Select(r => r.RSquared[1]).ToArray())} |");
            }
        Console.WriteLine($"  Wall time of these {results.Count} runs: {results.Sum(r => r.Elapsed.TotalSeconds):F0} s.");
    }
}
