using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Data;

/// <summary>The NYUD-v2 multi-task labels (MODEL-SPEC §10).</summary>
public enum NyudTask
{
    /// <summary>40-class semantic segmentation, <c>segmentation/&lt;id&gt;.png</c> (raw 0 = void → 255, class c stored as c + 1).</summary>
    Segmentation,
    /// <summary>Depth in metres, <c>depth/&lt;id&gt;.npy</c> (0 = missing, ignored by loss and metrics).</summary>
    Depth,
    /// <summary>Surface normals, <c>normals/&lt;id&gt;.npy</c> H×W×3 (or the ATRC copy's PNG, 2·v/255 − 1).</summary>
    Normals,
    /// <summary>Boundaries, <c>edge/&lt;id&gt;.npy</c> (or PNG, v/255 &gt; 0.5).</summary>
    Edges,
}

/// <summary>
/// NYUD-v2 in the multi-task layout of <see cref="NyudLayout"/> (also the layout <see cref="NyudLayoutWriter"/> writes generated
/// scenes in). Images may be <c>.png</c> or <c>.jpg</c>. Tasks get the spec's loss weights: segmentation 1, depth 1,
/// normals 10, edges 50 (MODEL-SPEC §8); column names are the <see cref="NyudTask"/> names.
/// </summary>
public sealed class NyudLayoutSource : IMultiTaskLayout
{
    /// <summary>NYU-40 classes.</summary>
    public const int NyudClasses = 40;
    private static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg"];
    private readonly NyudTask[] kinds;

    /// <summary>
    /// Opens <paramref name="root"/> for <paramref name="tasks"/> (default: segmentation and depth, the paper's NYUD tasks).
    /// <paramref name="segmentationClasses"/> is 40 for NYUD-v2 (generated scenes written in this layout use their own count).
    /// </summary>
    public NyudLayoutSource(string root, IEnumerable<NyudTask>? tasks = null, int segmentationClasses = NyudClasses)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"NYUD dataset root '{root}' does not exist.");
        Root = root;
        kinds = (tasks ?? [NyudTask.Segmentation, NyudTask.Depth]).Distinct().ToArray();
        if (kinds.Length == 0) throw new ArgumentException("Choose at least one NYUD task.", nameof(tasks));
        Tasks = kinds.Select(k => Spec(k, segmentationClasses)).ToArray();
    }

    /// <summary>The task spec (column name, classes, loss weight) of a NYUD task.</summary>
    public static TaskSpec Spec(NyudTask task, int segmentationClasses = NyudClasses) => task switch
    {
        NyudTask.Segmentation => TaskSpec.Segmentation(segmentationClasses, nameof(NyudTask.Segmentation), 1f),
        NyudTask.Depth => TaskSpec.DepthTask(nameof(NyudTask.Depth), 1f),
        NyudTask.Normals => TaskSpec.NormalsTask(nameof(NyudTask.Normals), 10f),
        NyudTask.Edges => TaskSpec.BoundariesTask(nameof(NyudTask.Edges), 50f),
        _ => throw new ArgumentOutOfRangeException(nameof(task), task, "Unknown NYUD task."),
    };

    /// <inheritdoc />
    public string Root { get; }
    /// <inheritdoc />
    public IReadOnlyList<TaskSpec> Tasks { get; }

    /// <inheritdoc />
    public IReadOnlyList<string> ReadSplit(string split) => new NyudLayoutReader(Root).ReadSplit(split);

    /// <inheritdoc />
    public string ImageFile(string id) =>
        MultiTaskLayoutChecks.FirstExisting(ImageExtensions.Select(e => NyudLayout.FileOf(Root, NyudLayout.ImagesFolder, id, e)))
        ?? NyudLayout.FileOf(Root, NyudLayout.ImagesFolder, id, ".png");

    /// <inheritdoc />
    public string LabelFile(int task, string id) => LabelFile(kinds[task], id);

    /// <inheritdoc />
    public IEnumerable<string> RequiredFiles(string id) => kinds.Select(k => LabelFile(k, id)).Prepend(ImageFile(id));

    /// <inheritdoc />
    public DenseLabelMap ReadLabel(int task, string id)
    {
        NyudTask kind = kinds[task];
        string path = LabelFile(kind, id);
        bool png = path.EndsWith(".png", StringComparison.OrdinalIgnoreCase);
        var map = kind switch
        {
            NyudTask.Segmentation => DenseLabelFile.ReadNative(path, 1, DenseLabelEncoding.NyudSegmentation),
            NyudTask.Normals => DenseLabelFile.ReadNative(path, 3, png ? DenseLabelEncoding.NormalsFromRgb : DenseLabelEncoding.Identity),
            NyudTask.Edges => DenseLabelFile.ReadNative(path, 1, png ? DenseLabelEncoding.Binary : DenseLabelEncoding.Identity),
            _ => DenseLabelFile.ReadNative(path, 1),
        };
        return MultiTaskLayoutChecks.CheckValues(Tasks[task], map, path);
    }

    private string LabelFile(NyudTask kind, string id)
    {
        var (folder, extensions) = kind switch
        {
            NyudTask.Segmentation => (NyudLayout.SegmentationFolder, new[] { ".png" }),
            NyudTask.Depth => (NyudLayout.DepthFolder, new[] { ".npy" }),
            NyudTask.Normals => (NyudLayout.NormalsFolder, new[] { ".npy", ".png" }),
            _ => (NyudLayout.EdgeFolder, new[] { ".npy", ".png" }),
        };
        return MultiTaskLayoutChecks.FirstExisting(extensions.Select(e => NyudLayout.FileOf(Root, folder, id, e)))
            ?? NyudLayout.FileOf(Root, folder, id, extensions[0]);
    }
}
