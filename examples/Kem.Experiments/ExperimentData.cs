using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;

namespace Kem.Experiments;

/// <summary>Loads the comparison's data through the ML.NET dataset readers (LoadNyud / LoadPascalContext) into memory.</summary>
internal static class ExperimentData
{
    /// <summary>
    /// The splits in memory at the network's size, the tasks, a description, and — with <c>--eval-original-size</c> — the val
    /// labels at their stored size, read from the layout on demand: (task, val index) → label (null otherwise).
    /// </summary>
    public static (DenseDataset Train, DenseDataset Val, IReadOnlyList<TaskSpec> Tasks, string Label, Func<int, int, DenseLabelMap>? ValLabels) Load(
        MLContext ml, ExperimentSettings s, string outDir, Action<string> log)
    {
        var data = ml.MultiTask().Data;
        switch (s.Dataset)
        {
            case DatasetKind.Pascal:
            {
                var kinds = s.Tasks.Length == 0 ? null : s.Tasks.Select(t => Enum.Parse<PascalContextTask>(t, ignoreCase: true)).ToArray();
                var columns = data.PascalContextTasks(kinds);
                var val = Read(data, ml, data.LoadPascalContext(s.DatasetPath!, "val", s.Height, s.Width, kinds), columns, s.Val ?? 0);
                return (Read(data, ml, data.LoadPascalContext(s.DatasetPath!, "train", s.Height, s.Width, kinds), columns, s.Train ?? 0), val,
                        columns.Select(c => c.Task).ToArray(), $"PASCAL-Context at {s.DatasetPath}{Limits(s)}",
                        StoredLabels(s, new PascalContextLayoutSource(s.DatasetPath!, kinds), columns, val.Count));
            }
            case DatasetKind.Nyud:
            {
                var kinds = NyudKinds(s);
                var columns = data.NyudTasks(kinds);
                var val = Read(data, ml, data.LoadNyud(s.DatasetPath!, "val", s.Height, s.Width, kinds), columns, s.Val ?? 0);
                return (Read(data, ml, data.LoadNyud(s.DatasetPath!, "train", s.Height, s.Width, kinds), columns, s.Train ?? 0), val,
                        columns.Select(c => c.Task).ToArray(), $"NYUD-v2 at {s.DatasetPath}{Limits(s)}",
                        StoredLabels(s, new NyudLayoutSource(s.DatasetPath!, kinds), columns, val.Count));
            }
            default:
            {
                // Generated NYUD-like scenes (seed 1, independent of the training seeds), written in the NYUD layout and read back.
                int trainCount = s.Train ?? 320, valCount = s.Val ?? 80;
                string root = Path.Combine(outDir, "data", $"scenes-{s.Height}x{s.Width}-{trainCount}-{valCount}");
                if (!File.Exists(NyudLayout.SplitFile(root, NyudLayout.ValSplit)))
                {
                    log($"Generating {trainCount} + {valCount} scenes into {root} ...");
                    var generator = new SceneGenerator(new SceneOptions { Width = s.Width, Height = s.Height, Seed = 1 });
                    NyudLayoutWriter.Write(root, generator, trainCount, valCount);
                }
                var kinds = NyudKinds(s);
                var columns = data.NyudTasks(kinds, SceneGenerator.ClassCount);
                var val = Read(data, ml, data.LoadNyud(root, "val", s.Height, s.Width, kinds, SceneGenerator.ClassCount), columns, 0);
                return (Read(data, ml, data.LoadNyud(root, "train", s.Height, s.Width, kinds, SceneGenerator.ClassCount), columns, 0), val,
                        columns.Select(c => c.Task).ToArray(),
                        $"generated NYUD-like scenes (SceneGenerator seed 1, {SceneGenerator.ClassCount} classes), NYUD layout at {root}",
                        StoredLabels(s, new NyudLayoutSource(root, kinds, SceneGenerator.ClassCount), columns, val.Count));
            }
        }
    }

    /// <summary>With --eval-original-size: the first <paramref name="count"/> val ids' labels at their stored size, in the val data's row order.</summary>
    private static Func<int, int, DenseLabelMap>? StoredLabels(ExperimentSettings s, IMultiTaskLayout layout, IReadOnlyList<TaskColumn> columns, int count)
    {
        if (!s.EvalOriginalSize) return null;
        if (!layout.Tasks.Select(t => t.Name).SequenceEqual(columns.Select(c => c.Task.Name)))
            throw new InvalidOperationException($"The layout's tasks [{string.Join(", ", layout.Tasks.Select(t => t.Name))}] are not the columns' order.");
        var ids = layout.ReadSplit("val").Take(count).ToArray();
        return (task, image) => layout.ReadLabel(task, ids[image]);
    }

    private static string Limits(ExperimentSettings s) =>
        s.Train is null && s.Val is null ? " (all train / val ids)" : $" (first {s.Train?.ToString() ?? "all"} train / {s.Val?.ToString() ?? "all"} val ids)";

    private static NyudTask[]? NyudKinds(ExperimentSettings s) =>
        s.Tasks.Length == 0 ? null : s.Tasks.Select(t => Enum.Parse<NyudTask>(t, ignoreCase: true)).ToArray();

    private static DenseDataset Read(MultiTaskDataCatalog data, MLContext ml, IDataView view, IReadOnlyList<TaskColumn> columns, int limit) =>
        data.ToDenseDataset(limit > 0 ? ml.Data.TakeRows(view, limit) : view, columns);
}
