using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using Microsoft.ML.Runtime;

namespace Kem.Trainers;

/// <summary>
/// Fits a multi-task KEM network (TorchSharp) on an image column plus one label column per task, and returns a
/// <see cref="MultiTaskKemTransformer"/> that adds, per task, a score column and (classification) a predicted-label column.
/// Images come from <c>LoadImages → ResizeImages → ExtractPixels</c> (planes not interleaved, values 0..255 by default).
/// </summary>
public sealed class MultiTaskKemTrainer : IEstimator<MultiTaskKemTransformer>
{
    /// <summary>
    /// Everything the trainer can be told. Defaults: the spec's `Small` configuration with sKEM (MODEL-SPEC §1).
    /// <see cref="Architecture"/> selects the model family: the shared-encoder network with <see cref="Interaction"/> (default),
    /// sequential cross attention (§5: uses <see cref="MultiScale"/>, <see cref="Sequential"/>, Width / Heads) or computation
    /// sharing (§6: uses <see cref="ComputationSharing"/> with the backbone and encoder/decoder depths).
    /// </summary>
    public sealed class Options
    {
        /// <summary>Image column: float vector 3×H×W (ExtractPixels' output).</summary>
        public string ImageColumnName { get; set; } = "Image";
        /// <summary>The tasks and their label columns.</summary>
        public IList<TaskColumn> Tasks { get; set; } = new List<TaskColumn>();
        /// <summary>Model family (default: the §1 shared-encoder network with the interaction below).</summary>
        public NetworkArchitecture Architecture { get; set; } = NetworkArchitecture.SharedEncoder;
        /// <summary>Image encoder (default TinyViT).</summary>
        public BackboneKind Backbone { get; set; } = BackboneKind.TinyViT;
        /// <summary>Token stride / patch size s.</summary>
        public int TokenStride { get; set; } = 8;
        /// <summary>Token width d.</summary>
        public int Width { get; set; } = 128;
        /// <summary>Attention heads h.</summary>
        public int Heads { get; set; } = 4;
        /// <summary>Global blocks in the backbone.</summary>
        public int BackboneDepth { get; set; } = 4;
        /// <summary>Blocks per task encoder.</summary>
        public int EncoderDepth { get; set; } = 2;
        /// <summary>Blocks per task decoder.</summary>
        public int DecoderDepth { get; set; } = 2;
        /// <summary>Freeze the backbone.</summary>
        public bool FreezeBackbone { get; set; }
        /// <summary>Interaction module and its settings (default sKEM, m 20, k 3).</summary>
        public InteractionOptions Interaction { get; set; } = new();
        /// <summary>Multi-scale encoder sizes (for <see cref="BackboneKind.MultiScale"/> and the sequential design).</summary>
        public MultiScaleOptions MultiScale { get; set; } = new();
        /// <summary>CTAM/CSAM settings of <see cref="NetworkArchitecture.SequentialCrossAttention"/>.</summary>
        public SequentialAttentionOptions Sequential { get; set; } = new();
        /// <summary>Base task and delta sparsity of <see cref="NetworkArchitecture.ComputationSharing"/>.</summary>
        public ComputationSharingOptions ComputationSharing { get; set; } = new();
        /// <summary>Input pixel values × PixelScale must be in [0,1] (1/255 for ExtractPixels' default).</summary>
        public float PixelScale { get; set; } = 1f / 255f;
        /// <summary>The training recipe (epochs, batch, learning rate, device, bf16, seed…).</summary>
        public TrainingOptions Training { get; set; } = new();
        /// <summary>Receives progress reports (also written to ML.NET's log channel).</summary>
        public IProgress<TrainingProgress>? Progress { get; set; }
        /// <summary>Cancels training between steps.</summary>
        public CancellationToken Cancellation { get; set; }
    }

    private readonly IHost host;
    private readonly Options options;

    /// <summary>Creates the trainer; prefer <c>mlContext.MultiTask().Trainers.Kem(...)</c>.</summary>
    public MultiTaskKemTrainer(IHostEnvironment env, Options options)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(options);
        host = env.Register(nameof(MultiTaskKemTrainer));
        this.options = options;
        if (options.Tasks.Count == 0)
            throw new ArgumentException("Give at least one task: Options.Tasks is empty (e.g. new TaskColumn(TaskSpec.Segmentation(8), \"Segmentation\")).");
        options.Training.Validate();
    }

    /// <summary>Checks the input columns and declares the output columns.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        if (!inputSchema.TryFind(options.ImageColumnName, out var image))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Image column '{options.ImageColumnName}' is missing. Add LoadImages → ResizeImages → ExtractPixels (output name '{options.ImageColumnName}') or set ImageColumnName.");
        if (image.Kind != SchemaShape.Column.VectorKind.Vector || image.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Image column '{options.ImageColumnName}' must be a known-size vector of Single (3×H×W, from ExtractPixels); it is {image.Kind} of {image.ItemType}.");
        foreach (var task in options.Tasks)
        {
            if (!inputSchema.TryFind(task.LabelColumn, out var label))
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Label column '{task.LabelColumn}' of task '{task.Task.Name}' is missing. Load it with mlContext.MultiTask().Transforms.LoadDenseLabels(...) or set TaskColumn.LabelColumnName.");
            if (label.Kind != SchemaShape.Column.VectorKind.Vector || label.ItemType != NumberDataViewType.Single)
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Label column '{task.LabelColumn}' must be a known-size vector of Single ({task.Task.LabelPlanes}×H×W); it is {label.Kind} of {label.ItemType}.");
        }
        return SchemaShapeColumns.Append(inputSchema, OutputColumns(options.Tasks));
    }

    internal static IEnumerable<SchemaShape.Column> OutputColumns(IEnumerable<TaskColumn> tasks)
    {
        foreach (var t in tasks)
        {
            yield return SchemaShapeColumns.Vector(t.ScoreColumn, NumberDataViewType.Single);
            if (t.Task.IsClassification) yield return SchemaShapeColumns.Vector(t.PredictedLabelColumn, NumberDataViewType.Int32);
        }
    }

    /// <summary>Trains on <paramref name="input"/> without a validation split.</summary>
    public MultiTaskKemTransformer Fit(IDataView input) => Fit(input, null);

    /// <summary>Trains on <paramref name="trainingData"/>; validates each epoch on <paramref name="validationData"/> and keeps the best epoch.</summary>
    public MultiTaskKemTransformer Fit(IDataView trainingData, IDataView? validationData)
    {
        ArgumentNullException.ThrowIfNull(trainingData);
        GetOutputSchema(SchemaShapeColumns.FromSchema(trainingData.Schema));
        var (height, width) = DenseDataReader.ImageSize(trainingData.Schema, options.ImageColumnName);
        var tasks = options.Tasks.Select(t => t.Task).ToArray();
        var networkOptions = new MultiTaskNetworkOptions
        {
            Tasks = tasks, Architecture = options.Architecture, ImageHeight = height, ImageWidth = width, Backbone = options.Backbone, TokenStride = options.TokenStride,
            Width = options.Width, Heads = options.Heads, BackboneDepth = options.BackboneDepth, EncoderDepth = options.EncoderDepth,
            DecoderDepth = options.DecoderDepth, FreezeBackbone = options.FreezeBackbone, Interaction = options.Interaction, PixelScale = options.PixelScale,
            MultiScale = options.MultiScale, Sequential = options.Sequential, ComputationSharing = options.ComputationSharing,
        };
        networkOptions.Validate();

        using var ch = host.Start("Training");
        var train = DenseDataReader.Read(trainingData, options.ImageColumnName, options.Tasks.ToArray(), height, width, "training data");
        var validation = validationData is null ? null
            : DenseDataReader.Read(validationData, options.ImageColumnName, options.Tasks.ToArray(), height, width, "validation data");
        if (options.Architecture != NetworkArchitecture.SharedEncoder)
            ch.Info(MessageSensitivity.None, $"Architecture {options.Architecture}: the Interaction options are not used (this family has no stage (c)).");
        else if (options.Interaction.Kind == InteractionKind.StableKem && options.Interaction.EtfMode == EtfMode.TaskVertices && tasks.Length == 2)
            ch.Warning(MessageSensitivity.None, "sKEM with EtfMode.TaskVertices and 2 tasks has rank-1 retrieve scores (MODEL-SPEC §3); consider EtfMode.SlotVertices.");

        TorchSharp.torch.manual_seed(options.Training.Seed); // seeded weights: same seed, same CPU model
        var network = MultiTaskModel.Create(networkOptions);
        var result = MultiTaskTrainingLoop.Fit(network, train, validation, options.Training, options.Progress, message => ch.Info(MessageSensitivity.None, message), options.Cancellation);
        ch.Info(MessageSensitivity.None, $"Trained {result.Steps} steps in {result.Elapsed:hh\\:mm\\:ss} on {result.Device}; holding the weights of epoch {result.BestEpoch}.");
        return new MultiTaskKemTransformer(host, network, options.ImageColumnName, options.Tasks.ToArray(), result);
    }

}
