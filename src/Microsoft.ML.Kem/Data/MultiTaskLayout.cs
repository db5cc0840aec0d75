using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Data;

/// <summary>
/// A dataset stored in a multi-task folder layout (MODEL-SPEC §10): split lists, one image per sample and, per task, a label
/// file read with the dataset's conventions. Implementations: <see cref="NyudLayoutSource"/>, <see cref="PascalContextLayoutSource"/>.
/// The ML.NET readers (<c>mlContext.MultiTask().Data.LoadNyud / LoadPascalContext</c>) are built on this.
/// </summary>
public interface IMultiTaskLayout
{
    /// <summary>Dataset root folder.</summary>
    string Root { get; }

    /// <summary>The tasks read, in column order; each task's <see cref="TaskSpec.Name"/> names its label column.</summary>
    IReadOnlyList<TaskSpec> Tasks { get; }

    /// <summary>The ids listed for <paramref name="split"/>, in file order; throws naming the list file when it is missing.</summary>
    IReadOnlyList<string> ReadSplit(string split);

    /// <summary>The image file of sample <paramref name="id"/> (it may not exist; see <see cref="RequiredFiles"/>).</summary>
    string ImageFile(string id);

    /// <summary>The label file of task <paramref name="task"/> for sample <paramref name="id"/> (it may not exist).</summary>
    string LabelFile(int task, string id);

    /// <summary>Every file sample <paramref name="id"/> needs for the chosen tasks, image first (checked before reading starts).</summary>
    IEnumerable<string> RequiredFiles(string id);

    /// <summary>Label of task <paramref name="task"/> for sample <paramref name="id"/> at its stored size; errors name the file.</summary>
    DenseLabelMap ReadLabel(int task, string id);
}

/// <summary>Checks shared by the layout sources.</summary>
public static class MultiTaskLayoutChecks
{
    /// <summary>
    /// Throws <see cref="InvalidDataException"/> naming <paramref name="path"/> when a classification label is not an integer
    /// class of <paramref name="task"/> or 255, or a regression label is not finite.
    /// </summary>
    public static DenseLabelMap CheckValues(TaskSpec task, DenseLabelMap map, string path)
    {
        for (int i = 0; i < map.Values.Length; i++)
        {
            float v = map.Values[i];
            bool ok = task.IsClassification
                ? v == TaskSpec.IgnoreLabel || (v >= 0 && v < task.Classes && v == MathF.Floor(v))
                : float.IsFinite(v);
            if (!ok)
                throw new InvalidDataException(task.IsClassification
                    ? $"'{path}': value {v} at pixel {i % (map.Height * map.Width)} is not a class of task '{task.Name}' (0..{task.Classes - 1} or 255 = ignore)."
                    : $"'{path}': value {v} at index {i} of task '{task.Name}' is not finite.");
        }
        return map;
    }

    /// <summary>The first of <paramref name="candidates"/> that exists, else null.</summary>
    public static string? FirstExisting(IEnumerable<string> candidates) => candidates.FirstOrDefault(File.Exists);
}
