using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Kem.Training;

/// <summary>
/// Training-time augmentation (MODEL-SPEC §11, training batches only; validation and evaluation never see it):
/// 1. horizontal flip with probability ½ (normals: x negated); 2. scale-and-rotate about the image centre by an affine
/// warp that keeps the size (image bilinear — the spec's cubic is not in TorchSharp 0.107's grid_sample —, labels and depth nearest; depth divided by the scale; normals rotated in-plane
/// by the same angle; uncovered label pixels 255, uncovered depth 0 = missing, uncovered image pixels the ImageNet mean,
/// i.e. 0 after the network's normalisation). Deviation from the spec's order: the images and labels are already resized
/// to the network's input size upstream (ML.NET / the dataset readers), so the warp runs at the network size, on the
/// training device (<see cref="BatchAugmenter"/>).
/// </summary>
/// <remarks>
/// The scale is drawn from <see cref="Scales"/> when given, else uniformly from [<see cref="MinScale"/>, <see cref="MaxScale"/>];
/// the angle uniformly from [−<see cref="MaxRotationDegrees"/>, <see cref="MaxRotationDegrees"/>], positive = counter-clockwise
/// as displayed (OpenCV's getRotationMatrix2D). A scale s &gt; 1 zooms in (content s times larger, depth / s).
/// </remarks>
public sealed record AugmentationOptions
{
    /// <summary>Horizontal flip with probability ½ per image.</summary>
    public bool Flip { get; init; }
    /// <summary>Discrete scales drawn with equal probability (NYUD: 1.0, 1.2, 1.5); null: the range <see cref="MinScale"/>…<see cref="MaxScale"/>.</summary>
    public IReadOnlyList<float>? Scales { get; init; }
    /// <summary>Lower end of the uniform scale range (used when <see cref="Scales"/> is null).</summary>
    public float MinScale { get; init; } = 1f;
    /// <summary>Upper end of the uniform scale range (used when <see cref="Scales"/> is null).</summary>
    public float MaxScale { get; init; } = 1f;
    /// <summary>Largest rotation in degrees; the angle is uniform in [−max, max]. 0: no rotation.</summary>
    public float MaxRotationDegrees { get; init; }

    /// <summary>No augmentation (the default: batches reach the step unchanged).</summary>
    public static AugmentationOptions None { get; } = new();
    /// <summary>NYUD recipe (MODEL-SPEC §11): flip, scale from {1.0, 1.2, 1.5}, no rotation.</summary>
    public static AugmentationOptions Nyud { get; } = new() { Flip = true, Scales = [1f, 1.2f, 1.5f] };
    /// <summary>PASCAL recipe (MODEL-SPEC §11): flip, scale uniform in [0.75, 1.25], rotation uniform in [−20°, 20°].</summary>
    public static AugmentationOptions Pascal { get; } = new() { Flip = true, MinScale = 0.75f, MaxScale = 1.25f, MaxRotationDegrees = 20f };

    /// <summary>The preset named <paramref name="name"/>: none, nyud or pascal (case-insensitive).</summary>
    public static AugmentationOptions Preset(string name) => name.Trim().ToLowerInvariant() switch
    {
        "none" => None,
        "nyud" => Nyud,
        "pascal" => Pascal,
        _ => throw new ArgumentException($"Unknown augmentation preset '{name}'; use none, nyud or pascal.", nameof(name)),
    };

    /// <summary>True when some image may be scaled or rotated.</summary>
    public bool Warps => MaxRotationDegrees > 0 || (Scales is { } s ? s.Any(x => x != 1f) : MinScale != 1f || MaxScale != 1f);

    /// <summary>True when any augmentation is on.</summary>
    public bool Enabled => Flip || Warps;

    /// <summary>Checks the settings; messages say what to change.</summary>
    public void Validate()
    {
        static bool Positive(float v) => v > 0 && float.IsFinite(v);
        if (Scales is { } scales)
        {
            if (scales.Count == 0) throw new ArgumentException("Augmentation.Scales is empty: give at least one scale (e.g. [1.0, 1.2, 1.5]) or set it to null and use MinScale/MaxScale.", nameof(Scales));
            foreach (float scale in scales)
                if (!Positive(scale))
                    throw new ArgumentOutOfRangeException(nameof(Scales), scale, "Augmentation.Scales must all be positive and finite (1 = no scaling, > 1 zooms in).");
            if (MinScale != 1f || MaxScale != 1f)
                throw new ArgumentException("Set either Augmentation.Scales (a discrete set) or MinScale/MaxScale (a range), not both.");
        }
        if (!Positive(MinScale)) throw new ArgumentOutOfRangeException(nameof(MinScale), MinScale, "Augmentation.MinScale must be positive and finite (e.g. 0.75).");
        if (!Positive(MaxScale)) throw new ArgumentOutOfRangeException(nameof(MaxScale), MaxScale, "Augmentation.MaxScale must be positive and finite (e.g. 1.25).");
        if (MaxScale < MinScale) throw new ArgumentException($"Augmentation.MaxScale ({MaxScale}) is below MinScale ({MinScale}): swap them.");
        if (!(MaxRotationDegrees >= 0 && MaxRotationDegrees <= 180))
            throw new ArgumentOutOfRangeException(nameof(MaxRotationDegrees), MaxRotationDegrees, "Augmentation.MaxRotationDegrees must be in [0, 180] (the PASCAL recipe uses 20).");
    }
}

/// <summary>
/// Applies <see cref="AugmentationOptions"/> to training batches on the device they are on (MODEL-SPEC §11, steps 1–2).
/// The per-image draws (flip, scale, angle) come from a <see cref="SplitMix"/> seeded with the training seed, on the host,
/// so runs are reproducible on any device; they reach the device as one small pinned tensor copied without blocking
/// (no host sync). Label conventions per <see cref="TaskKind"/>: class maps, saliency and boundaries are sampled nearest
/// and uncovered pixels become 255; depth is sampled nearest, valid values (&gt; 0, ≠ 255) divided by the scale, uncovered
/// pixels 0 (missing); normals are sampled nearest, valid vectors (no component 255) get x negated by the flip and
/// (x, y) rotated by the warp's angle, uncovered pixels 255. Normals' x and y follow the image columns and rows (camera
/// x right, y down, as in <see cref="Data.SceneGenerator"/>); data whose normals have y up would need the angle negated.
/// </summary>
public sealed class BatchAugmenter
{
    private static readonly Scalar Ignore = TaskSpec.IgnoreLabel.ToScalar(), Zero = 0f.ToScalar(), HalfScalar = 0.5f.ToScalar();
    private readonly AugmentationOptions options;
    private readonly IReadOnlyList<TaskSpec> tasks;
    private readonly float[] fill;
    private readonly SplitMix random;

    /// <summary>
    /// An augmenter for batches of <paramref name="network"/>'s tasks; <paramref name="seed"/> is the training seed
    /// (<see cref="TrainingOptions.Seed"/>), from which a stream separate from the shuffling one is derived.
    /// </summary>
    public BatchAugmenter(AugmentationOptions options, MultiTaskNetworkOptions network, int seed)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(network);
        options.Validate();
        (this.options, tasks) = (options, network.Tasks);
        fill = MultiTaskModel.ImageNetMean.Select(m => m / network.PixelScale).ToArray(); // raw pixels that normalise to 0
        random = new SplitMix(unchecked(seed * 0x2545F4914F6CDD1DL + 0x6175676D656E74L)); // "augment": not the shuffle stream
    }

    /// <summary>True when batches are changed at all.</summary>
    public bool Enabled => options.Enabled;

    /// <summary>
    /// The next training batch, augmented with fresh random draws (the input itself when augmentation is off):
    /// images B×3×H×W (raw pixels), labels B×P×H×W per task. Results live in the caller's dispose scope.
    /// </summary>
    public (Tensor Images, Tensor[] Labels) Apply((Tensor Images, Tensor[] Labels) batch)
    {
        if (!options.Enabled) return batch;
        var (flip, scale, angle) = Draw((int)batch.Images.shape[0]);
        return Apply(batch.Images, batch.Labels, flip, scale, angle);
    }

    /// <summary>Advances the draws past <paramref name="batches"/> batches of <paramref name="batchSize"/> images, as if they had been augmented (resuming a run).</summary>
    internal void Skip(int batches, int batchSize)
    {
        if (!options.Enabled) return;   // Apply draws nothing when off
        for (int b = 0; b < batches; b++) Draw(batchSize);
    }

    /// <summary>The next <paramref name="count"/> per-image draws: flip, scale, angle in degrees.</summary>
    internal (bool[] Flip, float[] Scale, float[] Angle) Draw(int count)
    {
        var flip = new bool[count];
        var scale = new float[count];
        var angle = new float[count];
        for (int b = 0; b < count; b++) // always three draws per image: the stream does not depend on the options
        {
            double u = Uniform(), v = Uniform(), w = Uniform();
            flip[b] = options.Flip && u < 0.5;
            scale[b] = options.Scales is { } scales
                ? scales[Math.Min((int)(v * scales.Count), scales.Count - 1)]
                : (float)(options.MinScale + (options.MaxScale - options.MinScale) * v);
            angle[b] = (float)((2 * w - 1) * options.MaxRotationDegrees);
        }
        return (flip, scale, angle);
    }

    /// <summary>
    /// Augments with given per-image parameters: <paramref name="flip"/> first, then the warp by <paramref name="scale"/>
    /// and <paramref name="angleDegrees"/> (counter-clockwise as displayed) about the centre. A batch without any flip or
    /// warp comes back unchanged (the same tensors); in a warped batch, an unwarped image's labels are exact and its pixels
    /// equal up to float rounding of the bilinear sample. Results live in the caller's dispose scope.
    /// </summary>
    public (Tensor Images, Tensor[] Labels) Apply(Tensor images, Tensor[] labels, bool[] flip, float[] scale, float[] angleDegrees)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        long count = images.shape[0], height = images.shape[2], width = images.shape[3];
        if (labels.Length != tasks.Count) throw new ArgumentException($"{labels.Length} label tensors for {tasks.Count} tasks.", nameof(labels));
        if (flip.Length != count || scale.Length != count || angleDegrees.Length != count)
            throw new ArgumentException($"Give one flip, scale and angle per image ({count}).");
        bool anyFlip = flip.Any(f => f);
        bool anyWarp = scale.Any(s => s != 1f) || angleDegrees.Any(a => a != 0f);
        if (!anyFlip && !anyWarp) return (images, labels);

        using var scope = torch.NewDisposeScope();
        var device = images.device;
        // Per image: flip, the 2×3 sampling matrix θ of affine_grid (row-major, zero translation), scale, cos, sin, the image
        // fill (3 channels). One pinned host → device copy, so the step never waits for the host.
        const int columns = 13;
        var host = new float[count * columns];
        for (int b = 0; b < count; b++)
        {
            double a = angleDegrees[b] * Math.PI / 180, c = Math.Cos(a) / scale[b], s = Math.Sin(a) / scale[b];
            // Output pixel p (centred, x right, y down) samples p_in = R(α)ᵀ·p / scale, with R(α) = [[cos, sin], [−sin, cos]]
            // the counter-clockwise rotation as displayed; in affine_grid's normalised coordinates the off-diagonal terms
            // carry the aspect ratio (x_n = 2x/W, y_n = 2y/H).
            float[] row = [flip[b] ? 1f : 0f, (float)c, (float)(-s * height / width), 0f, (float)(s * width / height), (float)c, 0f, scale[b],
                           (float)Math.Cos(a), (float)Math.Sin(a), fill[0], fill[1], fill[2]];
            row.CopyTo(host, b * columns);
        }
        var p = ToDevice(host, [count, columns], device);
        var flipMask = p[.., 0].gt(HalfScalar).view(count, 1, 1, 1);

        // MODEL-SPEC §11 step 1: horizontal flip (column c → W − 1 − c), normals' x negated.
        var x = images;
        var y = labels;
        if (anyFlip)
        {
            x = torch.where(flipMask, images.flip(3), images);
            y = labels.Select((l, t) => torch.where(flipMask, FlipLabel(tasks[t], l), l)).ToArray();
        }

        // MODEL-SPEC §11 step 2: scale-and-rotate about the centre, size kept.
        if (anyWarp)
        {
            var theta = p[.., 1..7].reshape(count, 2, 3);
            var grid = F.affine_grid(theta, [count, 3, height, width], align_corners: false);   // B×H×W×2
            x = WarpImage(x, grid, p[..1, 10..13].view(1, 3, 1, 1).to(x.dtype));
            y = WarpLabels(y, grid, p[.., 7].view(count, 1, 1, 1), p[.., 8].view(count, 1, 1, 1), p[.., 9].view(count, 1, 1, 1));
        }
        return (x.MoveToOuterDisposeScope(), y.Select(l => l.MoveToOuterDisposeScope()).ToArray());
    }

    private static Tensor WarpImage(Tensor images, Tensor grid, Tensor mean)
    {
        // Bilinear (the spec says cubic; TorchSharp 0.107's native grid_sample has no bicubic mode), with the mean outside the
        // image (0 after the network's normalisation): sample (x − mean) with zero padding and add the mean back.
        return F.grid_sample(images - mean, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Zeros, align_corners: false) + mean;
    }

    private Tensor[] WarpLabels(Tensor[] labels, Tensor grid, Tensor scale, Tensor cos, Tensor sin)
    {
        // Every label plane and a coverage plane in one nearest-neighbour sample: B×(ΣP + 1)×H×W.
        var ones = torch.ones_like(labels[0][.., ..1]);
        var warped = F.grid_sample(torch.cat([.. labels, ones], 1), grid, GridSampleMode.Nearest, GridSamplePaddingMode.Zeros, align_corners: false);
        var covered = warped[.., ^1..].gt(HalfScalar);                                        // B×1×H×W
        var result = new Tensor[labels.Length];
        int plane = 0;
        for (int t = 0; t < labels.Length; t++)
        {
            var task = tasks[t];
            var l = warped[.., plane..(plane + task.LabelPlanes)];
            plane += task.LabelPlanes;
            result[t] = task.Kind switch
            {
                TaskKind.Depth => torch.where(l.gt(Zero).logical_and(l.ne(Ignore)), l / scale, l).Else(covered, 0),
                TaskKind.Normals => RotateNormals(l, cos, sin).Else(covered, TaskSpec.IgnoreLabel),
                _ => l.Else(covered, TaskSpec.IgnoreLabel),
            };
        }
        return result;
    }

    /// <summary>Normals' (x, y) rotated counter-clockwise as displayed: (x, y) → (cos·x + sin·y, −sin·x + cos·y); invalid vectors kept.</summary>
    private static Tensor RotateNormals(Tensor n, Tensor cos, Tensor sin)
    {
        var nx = n[.., ..1];
        var ny = n[.., 1..2];
        var rotated = torch.cat([cos * nx + sin * ny, cos * ny - sin * nx, n[.., 2..]], 1);
        return torch.where(ValidNormals(n), rotated, n);
    }

    private static Tensor FlipLabel(TaskSpec task, Tensor label)
    {
        var flipped = label.flip(3);
        if (task.Kind != TaskKind.Normals) return flipped;
        var negated = torch.cat([-flipped[.., ..1], flipped[.., 1..]], 1);
        return torch.where(ValidNormals(flipped), negated, flipped);
    }

    /// <summary>B×1×H×W: no component is the ignore value (a zero vector stays zero under any rotation).</summary>
    private static Tensor ValidNormals(Tensor n) => n.eq(Ignore).any(1, keepdim: true).logical_not();

    private static Tensor ToDevice(float[] values, long[] shape, Device device)
    {
        var host = torch.tensor(values, shape);
        if (device.type != DeviceType.CUDA) return host;
        using var pinned = host.pin_memory();
        return pinned.to(device, non_blocking: true); // the host allocator keeps the pinned block until the copy is done
    }

    private double Uniform() => (random.Next() >> 11) * (1.0 / (1UL << 53));
}
