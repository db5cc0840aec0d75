using Kem.Trainers.DataViews;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx;
using Microsoft.ML.Kem.Training;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Onnx;

namespace Kem.Trainers;

/// <summary>
/// A fitted multi-task network. <see cref="Transform"/> adds, per task, "&lt;Task&gt;Score" (float vector C_t×H×W:
/// logits, metres, probabilities or unit normals) and, for classification tasks, "&lt;Task&gt;PredictedLabel"
/// (int vector H×W). Works in pipelines and with PredictionEngine.
/// <para>
/// Saving: ML.NET has no public way to save a custom transformer, so this one saves as its ONNX twin. <c>mlContext.Model.Save</c>
/// writes the <see cref="OnnxTransformer"/> of <see cref="ToOnnxTransformer"/> (same columns, names and types) into the zip;
/// loading that zip gives back that OnnxTransformer, which scores without TorchSharp. To train on or run the TorchSharp
/// network again, use <c>mlContext.MultiTask().Model.LoadKemTransformer(path)</c>. <c>mlContext.MultiTask().Model.Save</c>
/// writes the same zip atomically.
/// </para>
/// </summary>
public sealed class MultiTaskKemTransformer : ITransformer
{
    private readonly IHost host;
    private readonly object inferenceLock = new();

    /// <summary>
    /// The trained TorchSharp network (eval mode): a <see cref="MultiTaskNetwork"/> for the default architecture, a
    /// <see cref="SequentialCrossAttentionNetwork"/> or a <see cref="ComputationSharingNetwork"/>; every one saves and loads.
    /// </summary>
    public MultiTaskModel Network { get; }
    /// <summary>Image column read by the network.</summary>
    public string ImageColumnName { get; }
    /// <summary>The tasks and their column names.</summary>
    public IReadOnlyList<TaskColumn> Tasks { get; }
    /// <summary>How training went (device, steps, per-epoch losses); null for a transformer loaded from a file.</summary>
    public TrainingResult? TrainingResult { get; }

    internal MultiTaskKemTransformer(IHost host, MultiTaskModel network, string imageColumnName, IReadOnlyList<TaskColumn> tasks, TrainingResult? result)
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

    /// <summary>
    /// The ONNX graph of the network as it is now, for one image (3×H×W in, C_t×H×W and H×W out): the graph that
    /// <see cref="ToOnnxTransformer"/> and the model zip carry.
    /// </summary>
    public byte[] ToOnnx()
    {
        lock (inferenceLock) return KemOnnx.Export(Network, new OnnxExportOptions { InputName = ImageColumnName, Batched = false });
    }

    /// <summary>
    /// An ML.NET <see cref="OnnxTransformer"/> that computes the same columns as this transformer (names, types, values
    /// within float rounding), with ONNX Runtime instead of TorchSharp. ML.NET can save it; it owns a native session, so
    /// dispose it when done.
    /// </summary>
    public OnnxTransformer ToOnnxTransformer(MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var o = Network.Options;
        using var bytes = new MemoryStream(ToOnnx());
        var outputs = OutputColumns(Tasks).Select(c => c.Name).ToArray();
        var estimator = mlContext.Transforms.ApplyOnnxModel(outputs, new[] { ImageColumnName }, bytes);
        // The estimator only checks the input schema: an empty view with the image column is enough.
        var schema = SchemaDefinition.Create(typeof(ImageRow));
        schema[0].ColumnName = ImageColumnName;
        schema[0].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 3, o.ImageHeight, o.ImageWidth);
        return estimator.Fit(mlContext.Data.LoadFromEnumerable(Array.Empty<ImageRow>(), schema));
    }

    /// <summary>
    /// Writes a standalone ONNX file for ONNX Runtime in any language: input "&lt;ImageColumnName&gt;" N×3×H×W raw pixels,
    /// outputs N×C_t×H×W scores and N×H×W int32 labels (<paramref name="batched"/> false: one image, no N axis).
    /// Written atomically (temporary file, then rename).
    /// </summary>
    public void ExportOnnx(string path, bool batched = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        lock (inferenceLock) KemOnnx.Save(Network, path, new OnnxExportOptions { InputName = ImageColumnName, Batched = batched });
    }

    /// <summary>Saves this transformer as its ONNX twin (see the class remarks): ML.NET writes an OnnxTransformer in its place.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        using var onnx = ToOnnxTransformer(new MLContext());
        ((ICanSaveModel)onnx).Save(ctx);
    }

    /// <summary>The columns <see cref="Transform"/> adds, in order: per task its score, then (classification) its label.</summary>
    internal static IEnumerable<(string Name, TaskColumn Task, bool IsLabel)> OutputColumns(IEnumerable<TaskColumn> tasks) =>
        tasks.SelectMany(t => t.Task.IsClassification
            ? new[] { (t.ScoreColumn, t, false), (t.PredictedLabelColumn, t, true) }
            : new[] { (t.ScoreColumn, t, false) });

    private sealed class ImageRow
    {
        public float[] Image { get; set; } = Array.Empty<float>();
    }

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
            slots = OutputColumns(parent.Tasks).Select(c => (c.Task, c.IsLabel)).ToArray();
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
