using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Tasks;

namespace Kem.Trainers;

/// <summary>Per-task metrics of a scored data set, and the multi-task gain Δm when single-task references are given.</summary>
/// <param name="Tasks">One result per task, in task order (SegmentationMetrics, DepthMetrics, …).</param>
/// <param name="DeltaM">
/// Δm = (1/T) Σ_i (−1)^{l_i} (M_m,i − M_s,i)/M_s,i × 100, l_i = 1 when lower is better (MODEL-SPEC §9); null without references.
/// </param>
public sealed record MultiTaskMetrics(IReadOnlyList<TaskMetrics> Tasks, double? DeltaM)
{
    /// <summary>The metrics of the task named <paramref name="task"/>.</summary>
    public TaskMetrics this[string task] => Tasks.FirstOrDefault(t => t.TaskName == task)
        ?? throw new KeyNotFoundException($"No metrics for task '{task}'; tasks are: {string.Join(", ", Tasks.Select(t => t.TaskName))}.");
}

/// <summary>Reads label and prediction columns row by row and accumulates each task's metrics over the whole split.</summary>
public static class MultiTaskEvaluator
{
    /// <summary>
    /// Evaluates <paramref name="scored"/>: for classification tasks the "&lt;Task&gt;PredictedLabel" column, otherwise
    /// "&lt;Task&gt;Score", against each task's label column, with <paramref name="metricOptions"/> (default: no depth cap).
    /// Labels at another size than the predictions (kept at the original image size) are refused unless
    /// <see cref="DenseMetricOptions.ResizePredictionsToLabels"/> is set; then every task's score column is resized to the
    /// labels' size (<see cref="PredictionResize"/>) and classes are taken from the resized scores.
    /// </summary>
    public static MultiTaskMetrics Evaluate(IDataView scored, IReadOnlyList<TaskColumn> tasks, IReadOnlyList<TaskMetrics>? singleTaskReference = null,
        DenseMetricOptions? metricOptions = null)
    {
        ArgumentNullException.ThrowIfNull(scored);
        if (tasks.Count == 0) throw new ArgumentException("Evaluate needs at least one task.");
        var readers = tasks.Select(t => new TaskReader(scored.Schema, t, metricOptions)).ToArray();
        using var cursor = scored.GetRowCursor(readers.SelectMany(r => r.Columns));
        foreach (var r in readers) r.Bind(cursor);
        long rows = 0;
        while (cursor.MoveNext())
        {
            foreach (var r in readers) r.AddCurrent();
            rows++;
        }
        if (rows == 0) throw new ArgumentException("Evaluate: the scored data has no rows.");
        var metrics = readers.Select(r => r.Accumulator.Compute()).ToArray();
        double? deltaM = singleTaskReference is null ? null : DeltaM.Compute(metrics, singleTaskReference);
        return new MultiTaskMetrics(metrics, deltaM);
    }

    private sealed class TaskReader
    {
        private readonly TaskSpec task;
        private readonly DataViewSchema.Column label, prediction;
        private readonly bool intPrediction;
        private readonly int height, width;                    // the labels' size
        private readonly (int Height, int Width)? resizeFrom;  // the predictions' size where it differs (ResizePredictionsToLabels)
        private ValueGetter<VBuffer<float>>? labelGetter, floatGetter;
        private ValueGetter<VBuffer<int>>? intGetter;
        private VBuffer<float> labelBuffer, floatBuffer;
        private VBuffer<int> intBuffer;
        private float[] labelDense = Array.Empty<float>(), predictionDense = Array.Empty<float>(), scoreDense = Array.Empty<float>();

        public IDenseMetricAccumulator Accumulator { get; }
        public IEnumerable<DataViewSchema.Column> Columns => new[] { label, prediction };

        public TaskReader(DataViewSchema schema, TaskColumn task, DenseMetricOptions? metricOptions)
        {
            Accumulator = DenseMetrics.CreateAccumulator(task.Task, metricOptions);
            label = schema.GetColumnOrNull(task.LabelColumn)
                ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Evaluate: label column '{task.LabelColumn}' of task '{task.Task.Name}' is missing.");
            this.task = task.Task;
            string predictionName = task.Task.IsClassification ? task.PredictedLabelColumn : task.ScoreColumn;
            prediction = schema.GetColumnOrNull(predictionName)
                ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Evaluate: prediction column '{predictionName}' is missing: pass the output of the fitted model's Transform.");
            intPrediction = task.Task.IsClassification;
            if (label.Type is not VectorDataViewType lv || lv.Dimensions.Length < 2)
                throw new ArgumentOutOfRangeException(nameof(schema), $"Evaluate: label column '{task.LabelColumn}' must be a vector with dimensions [planes, H, W] (LoadDenseLabels gives them).");
            (height, width) = (lv.Dimensions[^2], lv.Dimensions[^1]);
            if (prediction.Type is VectorDataViewType pv && pv.Size == (intPrediction ? height * width : task.Task.Channels * height * width)) return;

            // MODEL-SPEC §9 option: predictions at the network's size, labels at another (the original image size)
            if (metricOptions?.ResizePredictionsToLabels != true)
                throw new ArgumentOutOfRangeException(nameof(schema),
                    $"Evaluate: prediction column '{predictionName}' ({prediction.Type}) does not match the label size {height}×{width}. Load the labels at " +
                    "the network's size, or set DenseMetricOptions.ResizePredictionsToLabels to score the predictions resized to the labels' size.");
            var scores = schema.GetColumnOrNull(task.ScoreColumn)
                ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Evaluate: resizing predictions to the labels' size reads the score column '{task.ScoreColumn}', which is missing.");
            if (scores.Type is not VectorDataViewType { ItemType: NumberDataViewType sn } sv || sn != NumberDataViewType.Single || sv.Dimensions.Length < 2
                || sv.Size != task.Task.Channels * sv.Dimensions[^2] * sv.Dimensions[^1])
                throw new ArgumentOutOfRangeException(nameof(schema),
                    $"Evaluate: score column '{task.ScoreColumn}' ({scores.Type}) must be a Single vector with dimensions [{task.Task.Channels}, H, W] to be resized to the labels' size.");
            (prediction, intPrediction, resizeFrom) = (scores, false, (sv.Dimensions[^2], sv.Dimensions[^1]));
        }

        public void Bind(DataViewRowCursor cursor)
        {
            labelGetter = cursor.GetGetter<VBuffer<float>>(label);
            if (intPrediction) intGetter = cursor.GetGetter<VBuffer<int>>(prediction);
            else floatGetter = cursor.GetGetter<VBuffer<float>>(prediction);
        }

        public void AddCurrent()
        {
            labelGetter!(ref labelBuffer);
            Densify(labelBuffer, ref labelDense);
            if (intPrediction)
            {
                intGetter!(ref intBuffer);
                if (predictionDense.Length != intBuffer.Length) predictionDense = new float[intBuffer.Length];
                var values = intBuffer.DenseValues().GetEnumerator();
                for (int i = 0; values.MoveNext(); i++) predictionDense[i] = values.Current;
            }
            else
            {
                floatGetter!(ref floatBuffer);
                if (resizeFrom is var (h, w))
                {
                    Densify(floatBuffer, ref scoreDense);   // the scores keep their own buffer: the resized map has the labels' size
                    predictionDense = PredictionResize.ToSize(task, scoreDense, h, w, height, width);
                }
                else Densify(floatBuffer, ref predictionDense);
            }
            Accumulator.Add(predictionDense, labelDense, height, width);
        }

        private static void Densify(in VBuffer<float> source, ref float[] target)
        {
            if (target.Length != source.Length) target = new float[source.Length];
            source.CopyTo(target);
        }
    }
}
