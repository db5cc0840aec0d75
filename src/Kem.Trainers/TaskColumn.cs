using Microsoft.ML.Kem.Tasks;

namespace Kem.Trainers;

/// <summary>A task and the input column holding its labels (a float vector P×H×W, e.g. from LoadDenseLabels).</summary>
/// <param name="Task">What to predict.</param>
/// <param name="LabelColumnName">Label column; defaults to the task's name.</param>
public sealed record TaskColumn(TaskSpec Task, string? LabelColumnName = null)
{
    /// <summary>The label column's name.</summary>
    public string LabelColumn => LabelColumnName ?? Task.Name;
    /// <summary>Name of the score column the transformer adds: "&lt;Task&gt;Score".</summary>
    public string ScoreColumn => Microsoft.ML.Kem.Onnx.KemOnnx.ScoreOutput(Task);
    /// <summary>Name of the predicted-label column (classification tasks): "&lt;Task&gt;PredictedLabel".</summary>
    public string PredictedLabelColumn => Microsoft.ML.Kem.Onnx.KemOnnx.PredictedLabelOutput(Task);
}
