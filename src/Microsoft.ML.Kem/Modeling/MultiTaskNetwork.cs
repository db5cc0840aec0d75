using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// The whole network of MODEL-SPEC §1 (paper Fig. 3): (a) backbone → shared tokens Z; (b) one encoder per task;
/// (c) the interaction (None / CrossAttention / Kem / StableKem); (d) one decoder + dense head per task. The encoder and
/// decoder blocks are global or window blocks on the token grid (<see cref="MultiTaskNetworkOptions.TaskBlocks"/>).
/// Input: raw pixels B×3×H×W (e.g. from ExtractPixels); they are scaled by PixelScale and ImageNet-normalised here,
/// so the exported graph and the trained graph see the same numbers.
/// Output: one raw map per task, B×C_t×H×W, in <see cref="MultiTaskNetworkOptions.Tasks"/> order.
/// </summary>
public sealed class MultiTaskNetwork : MultiTaskModel
{
    private readonly Tensor pixelMean;
    private readonly Tensor pixelStd;
    private readonly Backbone backbone;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> encoders;
    private readonly nn.Module<Tensor, Tensor> interaction;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> decoders;
    private readonly ModuleList<DenseHead> heads;

    /// <summary>Builds the network; validates <paramref name="options"/> first (its Architecture must be SharedEncoder).</summary>
    public MultiTaskNetwork(MultiTaskNetworkOptions options, string name = "kem") : base(name, options)
    {
        if (options.Architecture != NetworkArchitecture.SharedEncoder)
            throw new ArgumentException($"MultiTaskNetwork builds NetworkArchitecture.SharedEncoder, not {options.Architecture}: use MultiTaskModel.Create(options).", nameof(options));
        var o = options;
        int rows = o.ImageHeight / o.TokenStride, cols = o.ImageWidth / o.TokenStride;

        (pixelMean, pixelStd) = PixelStatistics(o);
        backbone = new Backbone("backbone", o);
        nn.Module<Tensor, Tensor> TaskBlocks(string name, int depth) =>                // MODEL-SPEC §1 b / d1: Global or Window
            SwinBlock.Stack(name, o.TaskBlocks, depth, rows, cols, o.Width, o.Heads, o.TokenWindow, o.MlpRatio);
        encoders = nn.ModuleList(o.Tasks.Select(t => TaskBlocks($"encoder_{t.Name}", o.EncoderDepth)).ToArray());
        interaction = InteractionFactory.Create("interaction", o.Interaction, o.Width, o.Heads, o.Tasks.Count, (rows, cols));
        decoders = nn.ModuleList(o.Tasks.Select(t => TaskBlocks($"decoder_{t.Name}", o.DecoderDepth)).ToArray());
        heads = nn.ModuleList(o.Tasks.Select(t => new DenseHead($"head_{t.Name}", t, o.Width, rows, cols, o.ImageHeight, o.ImageWidth)).ToArray());
        RegisterComponents();
        if (o.FreezeBackbone)                                                  // MODEL-SPEC §1: a1–a5 for the Swin kinds
            foreach (var (key, p) in backbone.named_parameters())
                if (Backbone.IsPretrained(o.Backbone, key)) p.requires_grad = false;
    }

    /// <summary>The interaction module at stage (c), for inspection (e.g. KEM's retrieve trace).</summary>
    public nn.Module<Tensor, Tensor> Interaction => interaction;

    /// <summary>images: B×3×H×W raw pixels → per task B×C_t×H×W.</summary>
    public override Tensor[] forward(Tensor images) => Run(images, null);

    /// <summary>forward, plus (when asked) each task's decoded tokens averaged (<see cref="TrainingOutputs.TaskFeatures"/>, B×T×d).</summary>
    public override TrainingOutputs ForwardTraining(Tensor images, bool taskFeatures)
    {
        if (!taskFeatures) return ForwardTraining(images);
        var features = new Tensor[heads.Count];
        var outputs = Run(images, features);
        return new TrainingOutputs(outputs, Array.Empty<Tensor[]>(), null) { TaskFeatures = torch.stack(features, 1) };
    }

    private Tensor[] Run(Tensor images, Tensor[]? features)
    {
        var mixed = interaction.forward(EncodeTasks(images));                  // (c) B×T×n×d
        var outputs = new Tensor[heads.Count];
        for (int t = 0; t < outputs.Length; t++)                               // (d) B×C_t×H×W
        {
            var decoded = decoders[t].forward(mixed.select(1, t));             // B×n×d
            if (features is not null) features[t] = decoded.mean([1]);
            outputs[t] = heads[t].forward(decoded);
        }
        return outputs;
    }

    /// <summary>
    /// Stages (a)–(b): raw pixels B×3×H×W → the task tokens X = [X_1; …; X_T], B×T×n×d, that the interaction reads
    /// (e.g. for <see cref="KnowledgeExtraction.Trace"/> on <see cref="Interaction"/>).
    /// </summary>
    public Tensor EncodeTasks(Tensor images)
    {
        var normalised = (images - pixelMean) / pixelStd;                      // MODEL-SPEC §1, input
        var shared = backbone.forward(normalised);                             // (a) B×n×d
        return torch.stack(encoders.Select(e => e.forward(shared)), 1);       // (b) B×T×n×d
    }
}
