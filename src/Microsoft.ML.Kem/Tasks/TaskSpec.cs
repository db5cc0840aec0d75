namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// One task of a multi-task network: its name (used for column names), kind, class count and loss weight.
/// Label layout per pixel (row-major H×W, float32): class index for segmentation/parts, metres for depth,
/// 0/1 for saliency and boundaries (255 = ignore), and for normals 3 planes (3×H×W).
/// </summary>
public sealed record TaskSpec(string Name, TaskKind Kind, int Classes = 1, float LossWeight = 1f)
{
    /// <summary>Label value that marks a pixel to ignore (MODEL-SPEC §8).</summary>
    public const float IgnoreLabel = 255f;

    /// <summary>Output channels C_t of the task's dense head (MODEL-SPEC §1, §8).</summary>
    public int Channels => Kind switch
    {
        TaskKind.SemanticSegmentation or TaskKind.Parts => Classes,
        TaskKind.Normals => 3,
        _ => 1,
    };

    /// <summary>Planes of the label map: 3 for normals, 1 otherwise.</summary>
    public int LabelPlanes => Kind == TaskKind.Normals ? 3 : 1;

    /// <summary>True for tasks whose prediction is a class index per pixel (argmax of the logits).</summary>
    public bool IsClassification => Kind is TaskKind.SemanticSegmentation or TaskKind.Parts;

    /// <summary>Validates the spec; throws with a message that says what to change.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
            throw new ArgumentException("A task needs a non-empty Name (it names the output columns).");
        if (IsClassification && (Classes < 2 || Classes > 254))
            throw new ArgumentOutOfRangeException(nameof(Classes), Classes,
                $"Task '{Name}' ({Kind}) needs 2..254 classes (255 is the ignore label).");
        if (!(LossWeight > 0) || float.IsInfinity(LossWeight))
            throw new ArgumentOutOfRangeException(nameof(LossWeight), LossWeight, $"Task '{Name}': LossWeight must be a positive finite number.");
    }

    /// <summary>Semantic segmentation with <paramref name="classes"/> classes.</summary>
    public static TaskSpec Segmentation(int classes, string name = "Segmentation", float weight = 1f) => new(name, TaskKind.SemanticSegmentation, classes, weight);
    /// <summary>Parts segmentation with <paramref name="classes"/> classes (background included).</summary>
    public static TaskSpec PartsOf(int classes, string name = "Parts", float weight = 2f) => new(name, TaskKind.Parts, classes, weight);
    /// <summary>Metric depth.</summary>
    public static TaskSpec DepthTask(string name = "Depth", float weight = 1f) => new(name, TaskKind.Depth, 1, weight);
    /// <summary>Saliency.</summary>
    public static TaskSpec SaliencyTask(string name = "Saliency", float weight = 30f) => new(name, TaskKind.Saliency, 1, weight);
    /// <summary>Surface normals.</summary>
    public static TaskSpec NormalsTask(string name = "Normals", float weight = 10f) => new(name, TaskKind.Normals, 3, weight);
    /// <summary>Boundaries.</summary>
    public static TaskSpec BoundariesTask(string name = "Boundaries", float weight = 50f) => new(name, TaskKind.Boundaries, 1, weight);
}
