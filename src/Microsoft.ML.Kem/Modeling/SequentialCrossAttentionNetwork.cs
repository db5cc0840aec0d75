using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// Sequential cross attention (MODEL-SPEC §5, seed 2209.02518): a multi-scale backbone with self-attention blocks at
/// every scale; per task and scale a residual conv head F_t^σ (with a 1×1 auxiliary prediction for deep supervision);
/// CTAM at every scale (tasks attend to each other), then CSAM per task (each task attends across its scales, coarse → fine);
/// a per-task fusion of all refined scales to the input size.
/// Input raw pixels B×3×H×W; output one raw map B×C_t×H×W per task. Uses <see cref="MultiTaskNetworkOptions.SequentialEncoder"/>
/// (<see cref="MultiTaskNetworkOptions.MultiScale"/>, or the TinySwin / SwinT stages when Backbone is one of those: the spec's
/// 4 scales at strides 4/8/16/32, 64…512 channels with TinySwin), <see cref="MultiTaskNetworkOptions.Sequential"/>,
/// Width / Heads (head width d_h) and MlpRatio; not the token-grid, encoder/decoder or interaction options.
/// </summary>
public sealed class SequentialCrossAttentionNetwork : MultiTaskModel
{
    private readonly Tensor pixelMean;
    private readonly Tensor pixelStd;
    private readonly MultiScaleBackbone backbone;
    private readonly ModuleList<TaskScaleHeads> taskHeads;
    private readonly ModuleList<CrossTaskAttentionModule> crossTask;
    private readonly ModuleList<CrossScaleAttentionModule> crossScale;
    private readonly ModuleList<FusionHead> predictionHeads;

    /// <summary>Builds the network; validates <paramref name="options"/> first (its Architecture must be SequentialCrossAttention).</summary>
    public SequentialCrossAttentionNetwork(MultiTaskNetworkOptions options, string name = "sca") : base(name, options)
    {
        if (options.Architecture != NetworkArchitecture.SequentialCrossAttention)
            throw new ArgumentException($"SequentialCrossAttentionNetwork builds NetworkArchitecture.SequentialCrossAttention, not {options.Architecture}: use MultiTaskModel.Create(options).", nameof(options));
        var o = options;
        var ms = o.SequentialEncoder;                                                   // MODEL-SPEC §5 backbone
        int headWidth = o.Width / o.Heads;
        var widths = Enumerable.Range(0, ms.Scales).Select(ms.WidthAt).ToArray();
        var heads = Enumerable.Range(0, ms.Scales).Select(s => ms.HeadsAt(s, headWidth)).ToArray();

        (pixelMean, pixelStd) = PixelStatistics(o);
        backbone = new MultiScaleBackbone("backbone", ms, o.ImageHeight, o.ImageWidth, headWidth, o.MlpRatio);
        taskHeads = nn.ModuleList(o.Tasks.Select(t => new TaskScaleHeads($"heads_{t.Name}", t, widths, o.Sequential.HeadBlocks)).ToArray());
        crossTask = nn.ModuleList(Enumerable.Range(0, ms.Scales)
            .Select(s => new CrossTaskAttentionModule($"ctam_{s}", o.Tasks.Count, widths[s], heads[s], o.Sequential.KeyPoolAt(ms.StrideAt(s)))).ToArray());
        crossScale = nn.ModuleList(o.Tasks.Select(t => new CrossScaleAttentionModule($"csam_{t.Name}", widths, heads)).ToArray());
        predictionHeads = nn.ModuleList(o.Tasks.Select(t => new FusionHead($"predict_{t.Name}", t, widths, backbone.Grids[0], o.ImageHeight, o.ImageWidth)).ToArray());
        RegisterComponents();
    }

    /// <summary>images: B×3×H×W raw pixels → per task B×C_t×H×W.</summary>
    public override Tensor[] forward(Tensor images) => Run(images, auxiliary: false).Predictions;

    /// <summary>The final maps plus, with <see cref="SequentialAttentionOptions.DeepSupervision"/>, one auxiliary map per scale and task.</summary>
    public override TrainingOutputs ForwardTraining(Tensor images) => Run(images, Options.Sequential.DeepSupervision);

    private TrainingOutputs Run(Tensor images, bool auxiliary)
    {
        int tasks = taskHeads.Count, scales = crossTask.Count;
        var normalised = (images - pixelMean) / pixelStd;                              // MODEL-SPEC §1, input
        var shared = backbone.forward(normalised);                                      // S × B×c_σ×h_σ×w_σ
        var perTask = taskHeads.Select(h => h.Features(shared)).ToArray();              // T × S × F_t^σ
        var afterTasks = Enumerable.Range(0, scales)                                    // CTAM at every scale: S × B×T×c_σ×h_σ×w_σ
            .Select(s => crossTask[s].forward(torch.stack(perTask.Select(f => f[s]), 1))).ToArray();
        var outputs = new Tensor[tasks];
        for (int t = 0; t < tasks; t++)
        {
            var refined = crossScale[t].forward(afterTasks.Select(m => m.select(1, t)).ToArray()); // CSAM: S × F̃_t^σ
            outputs[t] = predictionHeads[t].forward(refined);                                       // B×C_t×H×W
        }
        var deepSupervision = auxiliary
            ? Enumerable.Range(0, scales).Select(s => Enumerable.Range(0, tasks)
                .Select(t => taskHeads[t].Auxiliary(s, perTask[t][s], Options.ImageHeight, Options.ImageWidth)).ToArray()).ToArray()
            : Array.Empty<Tensor[]>();
        return new TrainingOutputs(outputs, deepSupervision, null);
    }

    /// <summary>
    /// One task's heads at every scale (§5): HeadBlocks residual conv blocks map backbone scale σ to F_t^σ (c_σ channels);
    /// a 1×1 conv c_σ → C_t gives the auxiliary (deep-supervision) prediction, bilinearly resized to H×W.
    /// </summary>
    private sealed class TaskScaleHeads : nn.Module
    {
        private readonly ModuleList<nn.Module<Tensor, Tensor>> features;
        private readonly ModuleList<Conv2d> auxiliary;

        public TaskScaleHeads(string name, TaskSpec task, int[] widths, int blocks) : base(name)
        {
            features = nn.ModuleList(widths.Select((c, s) => ResidualBlock.Stack($"scale_{s}", blocks, c)).ToArray());
            auxiliary = nn.ModuleList(widths.Select(c => nn.Conv2d(c, task.Channels, 1)).ToArray());
            RegisterComponents();
        }

        /// <summary>S backbone maps → S task maps F_t^σ, same shapes.</summary>
        public Tensor[] Features(Tensor[] shared) => shared.Select((m, s) => features[s].forward(m)).ToArray();

        /// <summary>F_t^σ → raw auxiliary prediction B×C_t×H×W.</summary>
        public Tensor Auxiliary(int scale, Tensor map, int height, int width) => nn.functional.interpolate(
            auxiliary[scale].forward(map), size: new long[] { height, width }, mode: InterpolationMode.Bilinear, align_corners: false);
    }

    /// <summary>Basic residual block: x ← ReLU(x + BN(Conv3×3(ReLU(BN(Conv3×3(x)))))).</summary>
    private sealed class ResidualBlock : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> body;

        public ResidualBlock(string name, int channels) : base(name)
        {
            body = nn.Sequential(
                ("conv1", nn.Conv2d(channels, channels, 3, padding: 1, bias: false)), ("bn1", nn.BatchNorm2d(channels)), ("relu", nn.ReLU()),
                ("conv2", nn.Conv2d(channels, channels, 3, padding: 1, bias: false)), ("bn2", nn.BatchNorm2d(channels)));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => nn.functional.relu(x + body.forward(x));

        public static nn.Module<Tensor, Tensor> Stack(string name, int depth, int channels) => depth == 0
            ? nn.Identity()
            : nn.Sequential(Enumerable.Range(0, depth).Select(i => ((string, nn.Module<Tensor, Tensor>))($"{i}", new ResidualBlock($"block{i}", channels))).ToArray());
    }

    /// <summary>
    /// Final per-task prediction (§5): every refined scale bilinearly resized to the finest grid, concatenated (Σc_σ),
    /// 3×3 conv–BN–ReLU to c_0, 1×1 conv to C_t, bilinear to H×W; depth ends in ReLU (positive), as the §1 depth head.
    /// </summary>
    private sealed class FusionHead : nn.Module<Tensor[], Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> fuse;
        private readonly Conv2d classifier;
        private readonly bool positive;
        private readonly long rows, cols, height, width;

        public FusionHead(string name, TaskSpec task, int[] widths, (int Rows, int Cols) finest, int height, int width) : base(name)
        {
            (rows, cols, this.height, this.width) = (finest.Rows, finest.Cols, height, width);
            fuse = nn.Sequential(("conv", nn.Conv2d(widths.Sum(), widths[0], 3, padding: 1, bias: false)), ("bn", nn.BatchNorm2d(widths[0])), ("relu", nn.ReLU()));
            classifier = nn.Conv2d(widths[0], task.Channels, 1);
            positive = task.Kind == TaskKind.Depth;
            // Start depth near a plausible value so its final ReLU is active from step 0 (as DenseHead).
            if (positive) using (torch.no_grad()) classifier.bias!.fill_(1.0);
            RegisterComponents();
        }

        public override Tensor forward(Tensor[] refined)
        {
            var stacked = torch.cat(refined.Select(m => ScaleFusionStem.Resize(m, rows, cols)).ToArray(), 1); // B×Σc_σ×h_0×w_0
            var y = classifier.forward(fuse.forward(stacked));                                             // B×C_t×h_0×w_0
            y = nn.functional.interpolate(y, size: new[] { height, width }, mode: InterpolationMode.Bilinear, align_corners: false);
            return positive ? nn.functional.relu(y) : y;
        }
    }
}
