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
        /// <summary>
        /// A named configuration of MODEL-SPEC §1 built at the image column's size (<see cref="NetworkPresets.Create"/>): Tiny, Small,
        /// Dev, Gpu448 or Paper. It gives <see cref="Backbone"/>, <see cref="TokenStride"/>, <see cref="Width"/>, <see cref="Heads"/>,
        /// <see cref="BackboneDepth"/>, <see cref="EncoderDepth"/>, <see cref="DecoderDepth"/>, <see cref="TaskBlocks"/> and
        /// <see cref="Interaction"/>, except those you set yourself, which win (a set <see cref="Interaction"/> replaces the preset's
        /// whole; start from <c>new InteractionOptions { MemorySlots = 8 }</c> for Tiny's m). Default Custom: every field as written here.
        /// </summary>
        public NetworkPreset Configuration { get; set; } = NetworkPreset.Custom;
        /// <summary>Image encoder (default TinyViT; TinySwin / SwinT are the spec's Swin backbones, TokenStride 8 or 16).</summary>
        public BackboneKind Backbone { get; set { field = value; Set(nameof(Backbone)); } } = BackboneKind.TinyViT;
        /// <summary>Token stride / patch size s.</summary>
        public int TokenStride { get; set { field = value; Set(nameof(TokenStride)); } } = 8;
        /// <summary>Token width d.</summary>
        public int Width { get; set { field = value; Set(nameof(Width)); } } = 128;
        /// <summary>Attention heads h.</summary>
        public int Heads { get; set { field = value; Set(nameof(Heads)); } } = 4;
        /// <summary>Global blocks in the backbone.</summary>
        public int BackboneDepth { get; set { field = value; Set(nameof(BackboneDepth)); } } = 4;
        /// <summary>Blocks per task encoder.</summary>
        public int EncoderDepth { get; set { field = value; Set(nameof(EncoderDepth)); } } = 2;
        /// <summary>Blocks per task decoder.</summary>
        public int DecoderDepth { get; set { field = value; Set(nameof(DecoderDepth)); } } = 2;
        /// <summary>
        /// Block kind of the task encoders and decoders (MODEL-SPEC §1 b, d1): Global (default) or Window (Swin blocks on the
        /// token grid, window <see cref="Swin"/>.Window for TinySwin / SwinT, else <see cref="MultiScale"/>.Window; 7 by default).
        /// SharedEncoder architecture only.
        /// </summary>
        public BlockAttention TaskBlocks { get; set { field = value; Set(nameof(TaskBlocks)); } } = BlockAttention.Global;
        /// <summary>
        /// Pre-trained backbone weights: a safetensors file in our names or the timm / Swin names that
        /// <see cref="BackboneWeights.MapKey"/> translates (MODEL-SPEC §1). Missing and unexpected keys are logged.
        /// </summary>
        public string? BackboneWeightsPath { get; set; }
        /// <summary>Freeze the backbone after loading <see cref="BackboneWeightsPath"/> (the paper's setting); needs that file.</summary>
        public bool FreezeBackbone { get; set; }
        /// <summary>Interaction module and its settings (default sKEM, m 20, k 3; top-k mode, scope and axis, memory update, MemoryMlp, KemBlocks, ETF mode: <see cref="InteractionOptions"/>).</summary>
        public InteractionOptions Interaction { get; set { field = value; Set(nameof(Interaction)); } } = new();
        /// <summary>Multi-scale encoder sizes (for <see cref="BackboneKind.MultiScale"/> and the sequential design).</summary>
        public MultiScaleOptions MultiScale { get; set; } = new();
        /// <summary>Stage sizes of the TinySwin / SwinT backbones when they differ from the spec's presets (null: the preset).</summary>
        public MultiScaleOptions? Swin { get; set; }
        /// <summary>CTAM/CSAM settings of <see cref="NetworkArchitecture.SequentialCrossAttention"/>.</summary>
        public SequentialAttentionOptions Sequential { get; set; } = new();
        /// <summary>Base task and delta sparsity of <see cref="NetworkArchitecture.ComputationSharing"/>.</summary>
        public ComputationSharingOptions ComputationSharing { get; set; } = new();
        /// <summary>Input pixel values × PixelScale must be in [0,1] (1/255 for ExtractPixels' default).</summary>
        public float PixelScale { get; set; } = 1f / 255f;
        /// <summary>
        /// The training recipe (epochs, batch, learning rate, device, bf16, seed…); the spec's recipes are presets, e.g.
        /// <c>TrainingOptions.MtformerNyud</c>. Includes the training-time augmentation <see cref="TrainingOptions.Augmentation"/>
        /// (MODEL-SPEC §11: <see cref="AugmentationOptions.None"/> by default, <see cref="AugmentationOptions.Nyud"/> or
        /// <see cref="AugmentationOptions.Pascal"/>), applied to training batches only.
        /// </summary>
        public TrainingOptions Training { get; set; } = new();
        /// <summary>Receives progress reports (also written to ML.NET's log channel).</summary>
        public IProgress<TrainingProgress>? Progress { get; set; }
        /// <summary>Cancels training between steps.</summary>
        public CancellationToken Cancellation { get; set; }

        // The network fields set by the caller: with a Configuration, they override the preset's values.
        private readonly HashSet<string> explicitlySet = [];
        private void Set(string name) => explicitlySet.Add(name);

        /// <summary>
        /// The network options at the image size <paramref name="height"/>×<paramref name="width"/>: the <see cref="Configuration"/>'s,
        /// with the fields set on these Options overriding them (Custom: the fields alone). Not validated.
        /// </summary>
        public MultiTaskNetworkOptions NetworkOptions(int height, int width)
        {
            var tasks = Tasks.Select(t => t.Task).ToArray();
            var preset = Configuration == NetworkPreset.Custom ? null : NetworkPresets.Create(Configuration, height, width, tasks);
            var mine = new MultiTaskNetworkOptions
            {
                Tasks = tasks, Architecture = Architecture, ImageHeight = height, ImageWidth = width,
                Backbone = Backbone, TokenStride = TokenStride, Width = Width, Heads = Heads, BackboneDepth = BackboneDepth,
                EncoderDepth = EncoderDepth, DecoderDepth = DecoderDepth, TaskBlocks = TaskBlocks, Interaction = Interaction,
                PixelScale = PixelScale, MultiScale = MultiScale, Swin = Swin, Sequential = Sequential, ComputationSharing = ComputationSharing,
            };
            return NetworkPresets.Overlay(preset, mine, explicitlySet.Contains);   // the property names here are the network options'
        }
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
        if (options.FreezeBackbone && string.IsNullOrWhiteSpace(options.BackboneWeightsPath))
            throw new ArgumentException("FreezeBackbone = true needs BackboneWeightsPath: a frozen backbone must be pre-trained, and a random one would never learn. Set BackboneWeightsPath to a .safetensors file or leave FreezeBackbone off.");
        if (options.BackboneWeightsPath is { } weights && !File.Exists(weights))
            throw new FileNotFoundException($"BackboneWeightsPath '{weights}' does not exist.", weights);
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
        var networkOptions = options.NetworkOptions(height, width);
        if (options.Configuration != NetworkPreset.Custom)
        {
            try { networkOptions.Validate(); }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"{NetworkPresets.Describe(options.Configuration)}; image column '{options.ImageColumnName}' holds {height}×{width} images. " +
                    $"Resize the images (ResizeImages) to such a size or pick another Configuration. {e.Message}", e);
            }
        }
        return FitCore(trainingData, validationData, networkOptions, initialWeights: null);
    }

    /// <summary>
    /// Fine-tunes: trains a copy of <paramref name="initialModel"/>'s network (e.g. from
    /// <c>mlContext.MultiTask().Model.LoadKemTransformer(zip)</c>) instead of a freshly initialised one; <paramref name="initialModel"/>
    /// itself is left unchanged. The architecture (backbone, widths, interaction, image size) comes from the initial network,
    /// so the Options' architecture settings are not used; the tasks must be the same (name, kind, classes) and in the same
    /// order, while their loss weights, FreezeBackbone and the training recipe come from the Options. The loss combination
    /// starts afresh: learned s_t from 0, and <see cref="Microsoft.ML.Kem.Tasks.LossWeighting.Dwa"/> with λ_t = 1 for two epochs.
    /// </summary>
    public MultiTaskKemTransformer Fit(IDataView trainingData, IDataView? validationData, MultiTaskKemTransformer initialModel)
    {
        ArgumentNullException.ThrowIfNull(trainingData);
        ArgumentNullException.ThrowIfNull(initialModel);
        GetOutputSchema(SchemaShapeColumns.FromSchema(trainingData.Schema));
        var initial = initialModel.Network.Options;
        var (height, width) = DenseDataReader.ImageSize(trainingData.Schema, options.ImageColumnName);
        if ((height, width) != (initial.ImageHeight, initial.ImageWidth))
            throw new ArgumentException($"Image column '{options.ImageColumnName}' holds {height}×{width} images; the initial model was trained on {initial.ImageHeight}×{initial.ImageWidth}. Resize the images to {initial.ImageWidth}×{initial.ImageHeight}.");
        var tasks = options.Tasks.Select(t => t.Task).ToArray();
        static string Describe(IEnumerable<Microsoft.ML.Kem.Tasks.TaskSpec> ts) => string.Join(", ", ts.Select(t => $"{t.Name} ({t.Kind}, {t.Classes})"));
        if (tasks.Length != initial.Tasks.Count || tasks.Zip(initial.Tasks).Any(p => p.First.Name != p.Second.Name || p.First.Kind != p.Second.Kind || p.First.Classes != p.Second.Classes))
            throw new ArgumentException($"The tasks [{Describe(tasks)}] differ from the initial model's [{Describe(initial.Tasks)}]: fine-tuning keeps the heads, so give the same tasks in the same order.");
        var networkOptions = initial with { Tasks = tasks, FreezeBackbone = options.FreezeBackbone };
        return FitCore(trainingData, validationData, networkOptions, initialModel.Network);
    }

    private MultiTaskKemTransformer FitCore(IDataView trainingData, IDataView? validationData, MultiTaskNetworkOptions networkOptions, MultiTaskModel? initialWeights)
    {
        networkOptions.Validate();
        var (height, width) = (networkOptions.ImageHeight, networkOptions.ImageWidth);
        var tasks = networkOptions.Tasks;

        using var ch = host.Start("Training");
        var train = DenseDataReader.Read(trainingData, options.ImageColumnName, options.Tasks.ToArray(), height, width, "training data");
        var validation = validationData is null ? null
            : DenseDataReader.Read(validationData, options.ImageColumnName, options.Tasks.ToArray(), height, width, "validation data");
        if (networkOptions.Architecture != NetworkArchitecture.SharedEncoder)
            ch.Info(MessageSensitivity.None, $"Architecture {networkOptions.Architecture}: the Interaction options are not used (this family has no stage (c)).");
        else if (networkOptions.Interaction.Kind == InteractionKind.StableKem && (networkOptions.Interaction.EtfMode is EtfMode.TaskVertices or EtfMode.Span) && tasks.Count == 2)
            ch.Warning(MessageSensitivity.None, $"sKEM with EtfMode.{networkOptions.Interaction.EtfMode} and 2 tasks has rank-1 retrieve scores (MODEL-SPEC §3); consider EtfMode.SlotVertices.");

        TorchSharp.torch.manual_seed(options.Training.Seed); // seeded weights: same seed, same CPU model
        var network = MultiTaskModel.Create(networkOptions);
        if (initialWeights is not null)
        {
            network.load_state_dict(initialWeights.state_dict());
            ch.Info(MessageSensitivity.None, "Fine-tuning: starting from the initial model's weights.");
        }
        if (options.BackboneWeightsPath is { } path) // frozen only after loading (BackboneWeights refuses otherwise)
            BackboneWeights.Load(network as MultiTaskNetwork
                ?? throw new ArgumentException($"BackboneWeightsPath is supported for the SharedEncoder architecture only, not {networkOptions.Architecture}."),
                path, options.FreezeBackbone, message => ch.Info(MessageSensitivity.None, message));
        var result = MultiTaskTrainingLoop.Fit(network, train, validation, options.Training, options.Progress, message => ch.Info(MessageSensitivity.None, message), options.Cancellation);
        ch.Info(MessageSensitivity.None, $"Trained {result.Steps} steps in {result.Elapsed:hh\\:mm\\:ss} on {result.Device}; holding the weights of epoch {result.BestEpoch}.");
        return new MultiTaskKemTransformer(host, network, options.ImageColumnName, options.Tasks.ToArray(), result);
    }
}
