using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using Microsoft.ML.Kem.Visualization;

namespace Kem.Toys;

/// <summary>
/// Trains a small KEM network (segmentation + depth) on generated indoor scenes, then writes, for held-out scenes, one PNG
/// per image showing which patches every memory slot retrieved (rows = heads, columns = image and slots), a TSV of all
/// picks, and a per-slot summary: the task shares of its weight and the scene classes under its picked patches.
/// </summary>
internal static class SlotsCommand
{
    public static int Run(CommandLine options)
    {
        int trainCount = options.Int("train", 256), images = options.Int("images", 4), size = options.Int("size", 64), seed = options.Int("seed", 1);
        var interaction = new InteractionOptions
        {
            Kind = options.Enum("interaction", InteractionKind.Kem), MemorySlots = options.Int("slots", 8), TopK = options.Int("topk", 3),
            EtfMode = options.Enum("etf", EtfMode.SlotVertices),
        };
        var network = MultiTaskNetworkOptions.Tiny(TaskSpec.Segmentation(SceneGenerator.ClassCount), TaskSpec.DepthTask()) with
        {
            ImageHeight = size, ImageWidth = size, Width = options.Int("width", 64), Heads = options.Int("heads", 4), Interaction = interaction,
        };
        var training = new TrainingOptions
        {
            Epochs = options.Int("epochs", 4), BatchSize = options.Int("batch", 8), LearningRate = options.Double("lr", 1e-3), WarmupSteps = 20,
            Device = ComputeDevice.Cpu, Seed = seed, ReportEverySteps = 16,
        };
        string outDir = Path.GetFullPath(options.Text("out", Path.Combine("out", "slots")));
        options.RejectUnknown(Usage.Slots);
        Directory.CreateDirectory(outDir);

        var generator = new SceneGenerator(new SceneOptions { Width = size, Height = size, Seed = seed });
        var train = Dataset(network.Tasks, generator.GenerateMany(trainCount), size);
        var heldOut = generator.GenerateMany(images, firstIndex: trainCount);
        TorchSharp.torch.manual_seed(seed);
        using var net = new MultiTaskNetwork(network);
        Console.WriteLine($"== Slots: {interaction.Kind} (m {interaction.MemorySlots}, k {interaction.TopK}, h {network.Heads}) on {trainCount} generated {size}×{size} scenes, " +
                          $"{training.Epochs} epochs; token grid {size / network.TokenStride}×{size / network.TokenStride} per task");
        var result = MultiTaskTrainingLoop.Fit(net, train, null, training, log: line => Console.WriteLine("  " + line));
        Console.WriteLine($"  trained in {result.Elapsed.TotalSeconds:F0} s ({result.Steps} steps)");

        var test = Dataset(network.Tasks, heldOut, size);
        int stride = network.TokenStride, grid = size / stride;
        var classCounts = new double[interaction.MemorySlots, SceneGenerator.ClassCount];
        var taskShares = new double[interaction.MemorySlots, network.Tasks.Count];
        using var tsv = new StreamWriter(Path.Combine(outDir, "slots.tsv"));
        tsv.WriteLine("image\tslot\thead\trank\ttoken\ttask\trow\tcol\tweight\tclass");
        for (int i = 0; i < images; i++)
        {
            var pixels = test.Image(i);
            var selection = SlotVisualizer.Select(net, pixels);
            string path = Path.Combine(outDir, $"slots_{i:D2}.png");
            SlotVisualizer.WritePng(path, pixels, size, size, selection);
            foreach (var pick in selection.Picks)
            {
                int cls = MajorityClass(heldOut[i].Segmentation, size, pick.Row, pick.Col, stride);
                classCounts[pick.Slot, cls]++;
                taskShares[pick.Slot, pick.Task] += pick.Weight;
                tsv.WriteLine($"{i}\t{pick.Slot}\t{pick.Head}\t{pick.Rank}\t{pick.Token}\t{selection.TaskNames[pick.Task]}\t{pick.Row}\t{pick.Col}\t{pick.Weight:G6}\t{SceneGenerator.ClassNames[cls]}");
            }
            Console.WriteLine($"  wrote {path}");
        }
        Console.WriteLine($"  wrote {Path.Combine(outDir, "slots.tsv")} (one row per pick)");
        Console.WriteLine();
        Console.WriteLine($"What each slot retrieves over {images} held-out scenes (all heads): share of its weight per task, and the scene class under its picked patches:");
        Console.WriteLine($"  | slot | {string.Join(" | ", network.Tasks.Select(t => t.Name))} | classes under the picked patches |");
        Console.WriteLine($"  |---|{string.Concat(network.Tasks.Select(_ => "---|"))}---|");
        for (int s = 0; s < interaction.MemorySlots; s++)
        {
            double weight = Enumerable.Range(0, network.Tasks.Count).Sum(t => taskShares[s, t]);
            double picks = Enumerable.Range(0, SceneGenerator.ClassCount).Sum(c => classCounts[s, c]);
            var classes = Enumerable.Range(0, SceneGenerator.ClassCount).Where(c => classCounts[s, c] > 0).OrderByDescending(c => classCounts[s, c])
                .Select(c => $"{SceneGenerator.ClassNames[c]} {100 * classCounts[s, c] / picks:F0} %");
            Console.WriteLine($"  | {s} | {string.Join(" | ", Enumerable.Range(0, network.Tasks.Count).Select(t => $"{100 * taskShares[s, t] / weight:F0} %"))} | {string.Join(", ", classes)} |");
        }
        Console.WriteLine($"  Object pixels in the held-out scenes: {100.0 * heldOut.Sum(s => s.Segmentation.Count(c => c >= SceneGenerator.FirstObjectClass)) / (images * size * size):F0} %.");
        return 0;
    }

    /// <summary>Generated scenes as a <see cref="DenseDataset"/>: planar 0 … 255 pixels, segmentation and depth labels.</summary>
    private static DenseDataset Dataset(IReadOnlyList<TaskSpec> tasks, SceneSample[] samples, int size)
    {
        int plane = size * size;
        var pixels = new float[samples.Length * 3 * plane];
        for (int i = 0; i < samples.Length; i++)
            for (int p = 0; p < plane; p++)
                for (int c = 0; c < 3; c++) pixels[(i * 3 + c) * plane + p] = samples[i].Rgb[p * 3 + c];
        var segmentation = samples.SelectMany(s => s.Segmentation).ToArray();
        var depth = samples.SelectMany(s => s.Depth).ToArray();
        return new DenseDataset(tasks, size, size, pixels, [segmentation, depth], "generated scenes");
    }

    private static int MajorityClass(float[] segmentation, int size, int row, int col, int stride)
    {
        var counts = new int[SceneGenerator.ClassCount];
        for (int y = row * stride; y < (row + 1) * stride; y++)
            for (int x = col * stride; x < (col + 1) * stride; x++) counts[(int)segmentation[y * size + x]]++;
        return Array.IndexOf(counts, counts.Max());
    }
}
