using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;

namespace Kem.Experiments;

/// <summary>Loads the comparison's data through the ML.NET dataset readers (LoadNyud / LoadPascalContext) into memory.</summary>
internal static class ExperimentData
{
    public static (DenseDataset Train, DenseDataset Val, IReadOnlyList<TaskSpec> Tasks, string Label) Load(
        MLContext ml, ExperimentSettings s, string outDir, Action<string> log)
    {
        var data = ml.MultiTask().Data;
        switch (s.Dataset)
        {
            case DatasetKind.Pascal:
            {
                var kinds = s.Tasks.Length == 0 ? null : s.Tasks.Select(t => Enum.Parse<PascalContextTask>(t, ignoreCase: true)).ToArray();
                var columns = data.PascalContextTasks(kinds);
                return (Read(data, ml, data.LoadPascalContext(s.DatasetPath!, "train", s.Height, s.Width, kinds), columns, s.Train ?? 0),
                        Read(data, ml, data.LoadPascalContext(s.DatasetPath!, "val", s.Height, s.Width, kinds), columns, s.Val ?? 0),
                        columns.Select(c => c.Task).ToArray(), $"PASCAL-Context at {s.DatasetPath}{Limits(s)}");
            }
            case DatasetKind.Nyud:
            {
                var kinds = NyudKinds(s);
                var columns = data.NyudTasks(kinds);
                return (Read(data, ml, data.LoadNyud(s.DatasetPath!, "train", s.Height, s.Width, kinds), columns, s.Train ?? 0),
                        Read(data, ml, data.LoadNyud(s.DatasetPath!, "val", s.Height, s.Width, kinds), columns, s.Val ?? 0),
                        columns.Select(c => c.Task).ToArray(), $"NYUD-v2 at {s.DatasetPath}{Limits(s)}");
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
                return (Read(data, ml, data.LoadNyud(root, "train", s.Height, s.Width, kinds, SceneGenerator.ClassCount), columns, 0),
                        Read(data, ml, data.LoadNyud(root, "val", s.Height, s.Width, kinds, SceneGenerator.ClassCount), columns, 0),
                        columns.Select(c => c.Task).ToArray(),
                        $"generated NYUD-like scenes (SceneGenerator seed 1, {SceneGenerator.ClassCount} classes), NYUD layout at {root}");
            }
        }
    }

    private static string Limits(ExperimentSettings s) =>
        s.Train is null && s.Val is null ? " (all train / val ids)" : $" (first {s.Train?.ToString() ?? "all"} train / {s.Val?.ToString() ?? "all"} val ids)";

    private static NyudTask[]? NyudKinds(ExperimentSettings s) =>
        s.Tasks.Length == 0 ? null : s.Tasks.Select(t => Enum.Parse<NyudTask>(t, ignoreCase: true)).ToArray();

    private static DenseDataset Read(MultiTaskDataCatalog data, MLContext ml, IDataView view, IReadOnlyList<TaskColumn> columns, int limit) =>
        data.ToDenseDataset(limit > 0 ? ml.Data.TakeRows(view, limit) : view, columns);
}
