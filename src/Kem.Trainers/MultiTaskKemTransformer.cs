using Kem.Trainers.DataViews;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Training;
using Microsoft.ML.Runtime;

namespace Kem.Trainers;

/// <summary>
/// A fitted multi-task network. <see cref="Transform"/> adds, per task, "&lt;Task&gt;Score" (float vector C_t×H×W:
/// logits, metres, probabilities or unit normals) and, for classification tasks, "&lt;Task&gt;PredictedLabel"
/// (int vector H×W). Works in pipelines and with PredictionEngine.
/// </summary>
public sealed class MultiTaskKemTransformer : ITransformer
{
    private readonly IHost host;
    private readonly object inferenceLock = new();

    /// <summary>The trained TorchSharp network (eval mode): a <see cref="MultiTaskNetwork"/> for the default architecture.</summary>
    public MultiTaskModel Network { get; }
    /// <summary>Image column read by the network.</summary>
    public string ImageColumnName { get; }
    /// <summary>The tasks and their column names.</summary>
    public IReadOnlyList<TaskColumn> Tasks { get; }
    /// <summary>How training went (device, steps, per-epoch losses).</summary>
    public TrainingResult TrainingResult { get; }

    internal MultiTaskKemTransformer(IHost host, MultiTaskModel network, string imageColumnName, IReadOnlyList<TaskColumn> tasks, TrainingResult result)
    {
        (this.host, Network, ImageColumnName, Tasks, TrainingResult) = (host, network, imageColumnName, tasks, result);
    }

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => new KemColumnMapper(this, inputSchema).BuildOutputSchema();

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new MappedRowToRowMapper(new KemColumnMapper(this, inputSchema));

    /// <inheritdoc />
    public IDataView Transform(IDataView input) => new MappedDataView(input, new KemColumnMapper(this, input.Schema));

    /// <summary>Not yet: ML.NET gives external assemblies no public way to save a custom transformer; model zips will carry the network as ONNX.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(
        "MultiTaskKemTransformer cannot be written into an ML.NET model zip yet: ML.NET offers no public save path for external transformers, " +
        "and the ONNX carrier is not built yet. Keep the fitted transformer in memory for now.");

    internal TaskPrediction[] Predict(float[] pixels)
    {
        lock (inferenceLock) return Inference.Predict(Network, pixels, 1);
    }

    /// <summary>Appends the prediction columns; runs the network once per row and shares the result between the task columns.</summary>
    private sealed class KemColumnMapper : ColumnMapper
    {
        private readonly MultiTaskKemTransformer parent;
        private readonly DataViewSchema.Column image;
        private readonly (TaskColumn Task, bool IsLabel)[] slots;

        public KemColumnMapper(MultiTaskKemTransformer parent, DataViewSchema inputSchema) : base(inputSchema)
        {
            this.parent = parent;
            var o = parent.Network.Options;
            int expected = 3 * o.ImageHeight * o.ImageWidth;
            image = inputSchema.GetColumnOrNull(parent.ImageColumnName)
                ?? throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Image column '{parent.ImageColumnName}' is missing from the input.");
            if (image.Type is not VectorDataViewType { ItemType: NumberDataViewType n, Size: var size } || n != NumberDataViewType.Single || size != expected)
                throw new ArgumentOutOfRangeException(nameof(inputSchema),
                    $"Image column '{parent.ImageColumnName}' is {image.Type}; this model expects a vector of {expected} Single (3×{o.ImageHeight}×{o.ImageWidth}). Resize images to {o.ImageWidth}×{o.ImageHeight} before ExtractPixels.");
            slots = parent.Tasks.SelectMany(t => t.Task.IsClassification ? new[] { (t, false), (t, true) } : new[] { (t, false) }).ToArray();
            OutputColumns = slots.Select(s => s.IsLabel
                    ? new DataViewSchema.DetachedColumn(s.Task.PredictedLabelColumn, new VectorDataViewType(NumberDataViewType.Int32, o.ImageHeight, o.ImageWidth))
                    : new DataViewSchema.DetachedColumn(s.Task.ScoreColumn, new VectorDataViewType(NumberDataViewType.Single, s.Task.Task.Channels, o.ImageHeight, o.ImageWidth)))
                .ToArray();
        }

        public override IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; }
        public override IEnumerable<DataViewSchema.Column> Dependencies => new[] { image };

        public override Delegate?[] CreateGetters(DataViewRow input, Func<int, bool> isActive)
        {
            var pixelsGetter = input.GetGetter<VBuffer<float>>(image);
            VBuffer<float> pixels = default;
            long cachedPosition = -1;
            TaskPrediction[]? cached = null;
            TaskPrediction[] Current()
            {
                if (cached is null || cachedPosition != input.Position)
                {
                    pixelsGetter(ref pixels);
                    var dense = new float[pixels.Length];
                    pixels.CopyTo(dense);
                    cached = parent.Predict(dense);
                    cachedPosition = input.Position;
                }
                return cached;
            }

            var getters = new Delegate?[slots.Length];
            for (int i = 0; i < slots.Length; i++)
            {
                if (!isActive(i)) continue;
                int task = parent.Tasks.ToList().IndexOf(slots[i].Task);
                getters[i] = slots[i].IsLabel
                    ? (ValueGetter<VBuffer<int>>)((ref VBuffer<int> dst) => Fill(Current()[task].Labels!, ref dst))
                    : (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) => Fill(Current()[task].Scores, ref dst));
            }
            return getters;
        }

        private static void Fill<T>(T[] values, ref VBuffer<T> dst)
        {
            var editor = VBufferEditor.Create(ref dst, values.Length);
            values.AsSpan().CopyTo(editor.Values);
            dst = editor.Commit();
        }
    }
}
