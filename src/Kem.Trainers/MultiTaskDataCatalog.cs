using Kem.Trainers.DataViews;
using Microsoft.ML;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Training;

namespace Kem.Trainers;

/// <summary>
/// Dataset readers of the multi-task catalog (<c>mlContext.MultiTask().Data</c>): NYUD-v2 and PASCAL-Context in their
/// multi-task folder layouts (MODEL-SPEC §10) as lazy IDataViews that plug straight into the KEM trainer.
/// Each view has an <c>Id</c> text column, an <c>Image</c> column (Single 3×H×W, values 0..255, resized bicubically by default)
/// and one label column per task named like the task (Single P×H×W, resized with nearest neighbour, 255 = ignore).
/// Pair a view with <see cref="NyudTasks"/> / <see cref="PascalContextTasks"/> for the matching <see cref="TaskColumn"/>s.
/// </summary>
public sealed class MultiTaskDataCatalog
{
    internal MultiTaskDataCatalog() { }

    /// <summary>
    /// One split (<c>gt_sets/&lt;split&gt;.txt</c>) of NYUD-v2 at <paramref name="root"/>, resized to <paramref name="height"/>×<paramref name="width"/>.
    /// <paramref name="tasks"/> default to segmentation and depth (the paper's NYUD tasks). <paramref name="segmentationClasses"/> is 40
    /// for NYUD-v2; generated scenes written by <see cref="NyudLayoutWriter"/> use <see cref="SceneGenerator.ClassCount"/>.
    /// Missing files fail here, naming the file; corrupt files, wrong dtypes or shapes fail when the row is read, naming the file.
    /// </summary>
    public IDataView LoadNyud(string root, string split, int height, int width, IEnumerable<NyudTask>? tasks = null,
        int segmentationClasses = NyudLayoutSource.NyudClasses, ImageResampling resampling = ImageResampling.Bicubic)
        => new LayoutDataView(new NyudLayoutSource(root, tasks, segmentationClasses), split, height, width, resampling);

    /// <summary>The task columns of <see cref="LoadNyud"/>'s label columns, with the spec's classes and loss weights.</summary>
    public IReadOnlyList<TaskColumn> NyudTasks(IEnumerable<NyudTask>? tasks = null, int segmentationClasses = NyudLayoutSource.NyudClasses)
        => (tasks ?? [NyudTask.Segmentation, NyudTask.Depth]).Distinct().Select(t => new TaskColumn(NyudLayoutSource.Spec(t, segmentationClasses))).ToArray();

    /// <summary>
    /// One split (<c>ImageSets/Context/&lt;split&gt;.txt</c>) of PASCAL-Context at <paramref name="root"/>, resized to
    /// <paramref name="height"/>×<paramref name="width"/>. <paramref name="tasks"/> default to segmentation, human parts and saliency
    /// (the paper's PASCAL tasks). JPEGs are decoded with SkiaSharp. Human parts come from the PASCAL-Part .mat files; images
    /// without annotated person parts are all 255 (ignored). <paramref name="normalsValidContextClasses"/> optionally masks the
    /// distilled normals to those PASCAL-Context classes, as the public loaders do with their class list.
    /// </summary>
    public IDataView LoadPascalContext(string root, string split, int height, int width, IEnumerable<PascalContextTask>? tasks = null,
        ImageResampling resampling = ImageResampling.Bicubic, IEnumerable<int>? normalsValidContextClasses = null)
        => new LayoutDataView(new PascalContextLayoutSource(root, tasks, normalsValidContextClasses), split, height, width, resampling);

    /// <summary>The task columns of <see cref="LoadPascalContext"/>'s label columns, with the spec's classes and loss weights.</summary>
    public IReadOnlyList<TaskColumn> PascalContextTasks(IEnumerable<PascalContextTask>? tasks = null)
        => (tasks ?? [PascalContextTask.Segmentation, PascalContextTask.HumanParts, PascalContextTask.Saliency]).Distinct()
            .Select(t => new TaskColumn(PascalContextLayoutSource.Spec(t))).ToArray();

    /// <summary>
    /// Reads every row of <paramref name="data"/> (the image column and the tasks' label columns) into an in-memory
    /// <see cref="DenseDataset"/>, for engine-level experiments (<see cref="MultiTaskTrainingLoop"/>, <see cref="Evaluation"/>).
    /// </summary>
    public DenseDataset ToDenseDataset(IDataView data, IEnumerable<TaskColumn> tasks, string imageColumnName = "Image")
    {
        ArgumentNullException.ThrowIfNull(data);
        var (height, width) = DenseDataReader.ImageSize(data.Schema, imageColumnName);
        return DenseDataReader.Read(data, imageColumnName, tasks.ToArray(), height, width, "the data");
    }
}
