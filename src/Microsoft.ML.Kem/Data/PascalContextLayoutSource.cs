using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Data;

/// <summary>The PASCAL-Context multi-task labels (MODEL-SPEC §10).</summary>
public enum PascalContextTask
{
    /// <summary>21-class semantic segmentation (background + 20 VOC classes; 255 ignore).</summary>
    Segmentation,
    /// <summary>7-class human parts from <c>human_parts/&lt;id&gt;.mat</c>; images without annotated person parts are all 255.</summary>
    HumanParts,
    /// <summary>Distilled saliency, <c>sal_distill/&lt;id&gt;.png</c>, label = v/255 &gt; 0.5.</summary>
    Saliency,
    /// <summary>Distilled normals, <c>normals_distill/&lt;id&gt;.png</c>, 2·v/255 − 1.</summary>
    Normals,
    /// <summary>Edges: thinned non-zero Laplacian of <c>pascal-context/trainval/&lt;id&gt;.mat</c> LabelMap.</summary>
    Edges,
}

/// <summary>
/// PASCAL-Context in the multi-task layout of <see cref="PascalContextLayout"/>. Tasks get the spec's loss weights
/// (semseg 1, parts 2, saliency 30, normals 10, edges 50; MODEL-SPEC §8); column names are the <see cref="PascalContextTask"/> names.
/// </summary>
public sealed class PascalContextLayoutSource : IMultiTaskLayout
{
    private static readonly string[] ImageExtensions = [".jpg", ".jpeg", ".png"];
    private readonly PascalContextTask[] kinds;
    private readonly IReadOnlySet<int>? normalsValidClasses;

    /// <summary>
    /// Opens <paramref name="root"/> for <paramref name="tasks"/> (default: segmentation, human parts, saliency — the paper's
    /// PASCAL tasks). <paramref name="normalsValidContextClasses"/>: when given, normals are kept only on pixels whose
    /// PASCAL-Context LabelMap class is in the set (the public loaders' mask; others become 255). When null, normals are unmasked.
    /// </summary>
    public PascalContextLayoutSource(string root, IEnumerable<PascalContextTask>? tasks = null, IEnumerable<int>? normalsValidContextClasses = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"PASCAL-Context dataset root '{root}' does not exist.");
        Root = root;
        kinds = (tasks ?? [PascalContextTask.Segmentation, PascalContextTask.HumanParts, PascalContextTask.Saliency]).Distinct().ToArray();
        if (kinds.Length == 0) throw new ArgumentException("Choose at least one PASCAL-Context task.", nameof(tasks));
        Tasks = kinds.Select(Spec).ToArray();
        normalsValidClasses = normalsValidContextClasses?.ToHashSet();
    }

    /// <summary>The task spec (column name, classes, loss weight) of a PASCAL-Context task.</summary>
    public static TaskSpec Spec(PascalContextTask task) => task switch
    {
        PascalContextTask.Segmentation => TaskSpec.Segmentation(PascalContextLayout.SemanticClasses, nameof(PascalContextTask.Segmentation), 1f),
        PascalContextTask.HumanParts => TaskSpec.PartsOf(PascalHumanParts.ClassCount, nameof(PascalContextTask.HumanParts), 2f),
        PascalContextTask.Saliency => TaskSpec.SaliencyTask(nameof(PascalContextTask.Saliency), 30f),
        PascalContextTask.Normals => TaskSpec.NormalsTask(nameof(PascalContextTask.Normals), 10f),
        PascalContextTask.Edges => TaskSpec.BoundariesTask(nameof(PascalContextTask.Edges), 50f),
        _ => throw new ArgumentOutOfRangeException(nameof(task), task, "Unknown PASCAL-Context task."),
    };

    /// <inheritdoc />
    public string Root { get; }
    /// <inheritdoc />
    public IReadOnlyList<TaskSpec> Tasks { get; }

    /// <inheritdoc />
    public IReadOnlyList<string> ReadSplit(string split) => PascalContextLayout.ReadSplit(Root, split);

    /// <inheritdoc />
    public string ImageFile(string id) =>
        MultiTaskLayoutChecks.FirstExisting(ImageExtensions.Select(e => PascalContextLayout.FileOf(Root, PascalContextLayout.ImagesFolder, id, e)))
        ?? PascalContextLayout.FileOf(Root, PascalContextLayout.ImagesFolder, id, ".jpg");

    /// <inheritdoc />
    public string LabelFile(int task, string id) => LabelFile(kinds[task], id);

    /// <inheritdoc />
    public IEnumerable<string> RequiredFiles(string id)
    {
        yield return ImageFile(id);
        foreach (var kind in kinds)
        {
            yield return LabelFile(kind, id);
            if (kind == PascalContextTask.Normals && normalsValidClasses is not null) yield return ContextLabels(id);
        }
    }

    /// <inheritdoc />
    public DenseLabelMap ReadLabel(int task, string id)
    {
        var kind = kinds[task];
        string path = LabelFile(kind, id);
        DenseLabelMap map;
        switch (kind)
        {
            case PascalContextTask.Segmentation:
                map = DenseLabelFile.ReadNative(path, 1);
                break;
            case PascalContextTask.Saliency:
                map = DenseLabelFile.ReadNative(path, 1, DenseLabelEncoding.Binary);
                break;
            case PascalContextTask.Normals:
                map = DenseLabelFile.ReadNative(path, 3, DenseLabelEncoding.NormalsFromRgb);
                if (normalsValidClasses is not null) map = MaskNormals(map, ContextLabels(id), path);
                break;
            case PascalContextTask.HumanParts:
                var parts = PascalHumanParts.Read(path);
                bool constant = parts.Width * parts.Height == 1;
                map = new DenseLabelMap(parts.Values.Select(v => (float)v).ToArray(), 1, parts.Height, parts.Width, FitsAnySize: constant);
                break;
            default:
                var (labels, height, width) = PascalContextLayout.ReadLabelMap(path);
                map = new DenseLabelMap(PascalContextLayout.EdgesFromLabelMap(labels, height, width), 1, height, width);
                break;
        }
        return MultiTaskLayoutChecks.CheckValues(Tasks[task], map, path);
    }

    private DenseLabelMap MaskNormals(DenseLabelMap normals, string labelMapPath, string normalsPath)
    {
        var (labels, height, width) = PascalContextLayout.ReadLabelMap(labelMapPath);
        if (height != normals.Height || width != normals.Width)
            throw new InvalidDataException($"'{labelMapPath}' is {height}×{width} but the normals '{normalsPath}' are {normals.Height}×{normals.Width}.");
        int pixels = height * width;
        var values = (float[])normals.Values.Clone();
        for (int i = 0; i < pixels; i++)
            if (!normalsValidClasses!.Contains((int)labels[i]))
                for (int c = 0; c < 3; c++) values[c * pixels + i] = TaskSpec.IgnoreLabel;
        return normals with { Values = values };
    }

    private string ContextLabels(string id) => PascalContextLayout.FileOf(Root, PascalContextLayout.ContextLabelsFolder, id, ".mat");

    private string LabelFile(PascalContextTask kind, string id) => kind switch
    {
        PascalContextTask.Segmentation =>
            MultiTaskLayoutChecks.FirstExisting([
                PascalContextLayout.FileOf(Root, PascalContextLayout.SemsegVocFolder, id, ".png"),
                PascalContextLayout.FileOf(Root, PascalContextLayout.SemsegContextFolder, id, ".png")])
            ?? PascalContextLayout.FileOf(Root, PascalContextLayout.SemsegContextFolder, id, ".png"),
        PascalContextTask.HumanParts => PascalContextLayout.FileOf(Root, PascalContextLayout.HumanPartsFolder, id, ".mat"),
        PascalContextTask.Saliency => PascalContextLayout.FileOf(Root, PascalContextLayout.SaliencyFolder, id, ".png"),
        PascalContextTask.Normals => PascalContextLayout.FileOf(Root, PascalContextLayout.NormalsFolder, id, ".png"),
        _ => ContextLabels(id),
    };
}
