using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Training;

[TestClass]
public sealed class AugmentationTests
{
    private static readonly TaskSpec[] AllKinds =
    [
        TaskSpec.Segmentation(64, "Seg"), TaskSpec.PartsOf(7), TaskSpec.SaliencyTask(), TaskSpec.BoundariesTask(),
        TaskSpec.DepthTask(), TaskSpec.NormalsTask(),
    ];
    private const int Seg = 0, Parts = 1, Sal = 2, Edge = 3, Depth = 4, Normals = 5;
    private static readonly float[] Fill = [0.485f * 255, 0.456f * 255, 0.406f * 255];

    private static BatchAugmenter Augmenter(AugmentationOptions? options = null, int seed = 1) =>
        new(options ?? AugmentationOptions.Pascal, MultiTaskNetworkOptions.Tiny(AllKinds), seed);

    /// <summary>
    /// A batch with a distinct value per pixel: image = 3·col + 5·row + 40·channel + 10 + 100·b (a ramp), segmentation
    /// row·W + col, parts (row + col) mod 7, saliency and boundaries 0/1 with one 255, depth 1 + 0.1·(row·W + col) with
    /// pixel (0, 0) missing (0) and (1, 1) ignored (255), normals (0.01·index, 0.5 − 0.02·row, 0.7) with (2, 2) all 255.
    /// </summary>
    private static (Tensor Images, Tensor[] Labels) Batch(int count, int h, int w)
    {
        int n = h * w;
        var image = new float[count * 3 * n];
        var labels = AllKinds.Select(t => new float[count * t.LabelPlanes * n]).ToArray();
        for (int b = 0; b < count; b++)
            for (int r = 0; r < h; r++)
                for (int c = 0; c < w; c++)
                {
                    int i = r * w + c;
                    for (int ch = 0; ch < 3; ch++) image[(b * 3 + ch) * n + i] = 3 * c + 5 * r + 40 * ch + 10 + 100 * b;
                    labels[Seg][b * n + i] = i;
                    labels[Parts][b * n + i] = (r + c) % 7;
                    labels[Sal][b * n + i] = i == 3 ? 255 : i % 2;
                    labels[Edge][b * n + i] = r % 2;
                    labels[Depth][b * n + i] = i == 0 ? 0 : i == w + 1 ? 255 : 1 + 0.1f * i;
                    bool ignored = r == 2 && c == 2;
                    labels[Normals][(b * 3 + 0) * n + i] = ignored ? 255 : 0.01f * i;
                    labels[Normals][(b * 3 + 1) * n + i] = ignored ? 255 : 0.5f - 0.02f * r;
                    labels[Normals][(b * 3 + 2) * n + i] = ignored ? 255 : 0.7f;
                }
        return (torch.tensor(image, [count, 3, h, w]),
                AllKinds.Select((t, k) => torch.tensor(labels[k], [count, t.LabelPlanes, h, w])).ToArray());
    }

    private static float[,,,] Read(Tensor t)
    {
        var shape = t.shape;
        var values = t.contiguous().data<float>().ToArray();
        var result = new float[shape[0], shape[1], shape[2], shape[3]];
        Buffer.BlockCopy(values, 0, result, 0, values.Length * sizeof(float));
        return result;
    }

    [TestMethod]
    public void Flip_maps_column_c_to_W_minus_1_minus_c_for_the_image_and_every_label_kind_and_negates_normals_x()
    {
        const int h = 5, w = 6;
        var (images, labels) = Batch(2, h, w);
        var (outImages, outLabels) = Augmenter().Apply(images, labels, [true, false], [1f, 1f], [0f, 0f]);
        var (img, inImg) = (Read(outImages), Read(images));
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
                for (int ch = 0; ch < 3; ch++)
                {
                    Assert.AreEqual(inImg[0, ch, r, w - 1 - c], img[0, ch, r, c]);
                    Assert.AreEqual(inImg[1, ch, r, c], img[1, ch, r, c], "the second image is not flipped");
                }
        for (int t = 0; t < AllKinds.Length; t++)
        {
            var (got, src) = (Read(outLabels[t]), Read(labels[t]));
            for (int p = 0; p < AllKinds[t].LabelPlanes; p++)
                for (int r = 0; r < h; r++)
                    for (int c = 0; c < w; c++)
                    {
                        float expected = src[0, p, r, w - 1 - c];
                        if (t == Normals && p == 0 && expected != 255) expected = -expected;
                        Assert.AreEqual(expected, got[0, p, r, c], $"{AllKinds[t].Name} plane {p} at ({r}, {c})");
                        Assert.AreEqual(src[1, p, r, c], got[1, p, r, c]);
                    }
        }
        var normals = Read(outLabels[Normals]);
        Assert.AreEqual(255f, normals[0, 0, 2, w - 1 - 2], "an ignored normal keeps 255 (not −255)");
        Assert.AreEqual(-0.01f * (1 * w + 2), normals[0, 0, 1, w - 1 - 2], 1e-7f);
    }

    [TestMethod]
    public void Scale_1_5_samples_labels_nearest_like_the_reference_and_divides_depth_by_1_5()
    {
        const int h = 7, w = 9; // odd sizes: no source coordinate falls half-way between two pixels
        const float s = 1.5f;
        var (images, labels) = Batch(1, h, w);
        var (outImages, outLabels) = Augmenter().Apply(images, labels, [false], [s], [0f]);
        // Reference: output pixel centre (c + ½ − W/2) maps to (c + ½ − W/2)/s in the input, nearest pixel.
        static double Source(int i, int size) => (i + 0.5 - size / 2.0) / s + size / 2.0 - 0.5;
        var (img, seg, depth, normals, inSeg, inDepth) =
            (Read(outImages), Read(outLabels[Seg]), Read(outLabels[Depth]), Read(outLabels[Normals]), Read(labels[Seg]), Read(labels[Depth]));
        var inNormals = Read(labels[Normals]);
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
            {
                double sy = Source(r, h), sx = Source(c, w);
                int ry = (int)Math.Round(sy), rx = (int)Math.Round(sx);
                Assert.AreEqual(inSeg[0, 0, ry, rx], seg[0, 0, r, c], $"segmentation at ({r}, {c})");
                float d = inDepth[0, 0, ry, rx];
                Assert.AreEqual(d is 0 or 255 ? d : d / s, depth[0, 0, r, c], 1e-5f, $"depth at ({r}, {c})");
                for (int p = 0; p < 3; p++) Assert.AreEqual(inNormals[0, p, ry, rx], normals[0, p, r, c], "no rotation: normals only move");
                // The image is bilinear: on a ramp it gives the ramp at the continuous source position.
                Assert.AreEqual(3 * sx + 5 * sy + 10, img[0, 0, r, c], 1e-3, $"image at ({r}, {c})");
            }
    }

    [TestMethod]
    public void Rotation_by_90_degrees_turns_the_pattern_counter_clockwise_and_rotates_normals_x_y()
    {
        const int h = 5, w = 9; // not square: the aspect ratio must be handled in affine_grid's normalised coordinates
        var (images, labels) = Batch(1, h, w);
        var (outImages, outLabels) = Augmenter().Apply(images, labels, [false], [1f], [90f]);
        var (img, seg, normals, depth) = (Read(outImages), Read(outLabels[Seg]), Read(outLabels[Normals]), Read(outLabels[Depth]));
        var (inImg, inSeg, inNormals, inDepth) = (Read(images), Read(labels[Seg]), Read(labels[Normals]), Read(labels[Depth]));
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
            {
                // Counter-clockwise as displayed: the output's point (x, y) from the centre comes from (−y, x)... in rows and
                // columns: output (r, c) ← input (row c − 2, column 6 − r); columns 0, 1, 7, 8 are uncovered.
                bool covered = c is >= 2 and <= 6;
                if (!covered)
                {
                    Assert.AreEqual(255f, seg[0, 0, r, c], $"uncovered ({r}, {c})");
                    Assert.AreEqual(0f, depth[0, 0, r, c], "uncovered depth is missing (0)");
                    for (int p = 0; p < 3; p++) Assert.AreEqual(255f, normals[0, p, r, c]);
                    Assert.AreEqual(Fill[1], img[0, 1, r, c], 1e-3, "uncovered image pixels are the ImageNet mean");
                    continue;
                }
                int sr = c - 2, sc = 6 - r;
                Assert.AreEqual(inSeg[0, 0, sr, sc], seg[0, 0, r, c], $"segmentation at ({r}, {c})");
                Assert.AreEqual(inDepth[0, 0, sr, sc], depth[0, 0, r, c], "rotation keeps depth");
                Assert.AreEqual(inImg[0, 2, sr, sc], img[0, 2, r, c], 1e-3, $"image at ({r}, {c})");
                float nx = inNormals[0, 0, sr, sc], ny = inNormals[0, 1, sr, sc];
                if (nx == 255) { for (int p = 0; p < 3; p++) Assert.AreEqual(255f, normals[0, p, r, c], "an ignored normal stays ignored"); continue; }
                // (x, y) → (y, −x): a surface facing right (+x) faces up (−y, image rows grow downwards) after the turn.
                Assert.AreEqual(ny, normals[0, 0, r, c], 1e-6f, $"normal x at ({r}, {c})");
                Assert.AreEqual(-nx, normals[0, 1, r, c], 1e-6f, $"normal y at ({r}, {c})");
                Assert.AreEqual(inNormals[0, 2, sr, sc], normals[0, 2, r, c], "z is unchanged");
            }
        Assert.AreEqual(inSeg[0, 0, 0, 6], seg[0, 0, 0, 2], "top-left of the covered square shows the source's top-right");
    }

    [TestMethod]
    public void Zooming_out_fills_uncovered_labels_with_255_depth_with_0_and_the_image_with_the_mean()
    {
        const int h = 7, w = 9;
        var (images, labels) = Batch(1, h, w);
        var (outImages, outLabels) = Augmenter().Apply(images, labels, [false], [0.75f], [0f]);
        var img = Read(outImages);
        // Column 0 samples input column −1.33 → −1: outside. Row 0 samples row −1: outside.
        foreach (var (r, c) in new[] { (3, 0), (0, 4), (6, 8), (0, 0) })
        {
            foreach (int t in new[] { Seg, Parts, Sal, Edge, Normals })
                for (int p = 0; p < AllKinds[t].LabelPlanes; p++)
                    Assert.AreEqual(255f, Read(outLabels[t])[0, p, r, c], $"{AllKinds[t].Name} at ({r}, {c})");
            Assert.AreEqual(0f, Read(outLabels[Depth])[0, 0, r, c]);
            for (int ch = 0; ch < 3; ch++) Assert.AreEqual(Fill[ch], img[0, ch, r, c], 1e-3);
        }
        Assert.AreNotEqual(255f, Read(outLabels[Seg])[0, 0, 3, 4], "the centre is covered");
    }

    [TestMethod]
    public void Random_scales_and_rotations_never_create_values_outside_the_label_set()
    {
        const int h = 7, w = 9;
        var augmenter = Augmenter(new AugmentationOptions { Flip = true, MinScale = 0.5f, MaxScale = 2f, MaxRotationDegrees = 180 });
        var (images, labels) = Batch(4, h, w);
        var seen255 = false;
        for (int round = 0; round < 5; round++)
        {
            using var scope = torch.NewDisposeScope();
            var (_, outLabels) = augmenter.Apply((images, labels));
            var seg = outLabels[Seg].data<float>().ToArray();
            Assert.IsTrue(seg.All(v => v == 255 || (v >= 0 && v < h * w && v == MathF.Floor(v))), "segmentation stays class indices or 255");
            Assert.IsTrue(outLabels[Parts].data<float>().ToArray().All(v => v == 255 || (v >= 0 && v < 7 && v == MathF.Floor(v))));
            Assert.IsTrue(outLabels[Sal].data<float>().ToArray().All(v => v is 0 or 1 or 255));
            Assert.IsTrue(outLabels[Edge].data<float>().ToArray().All(v => v is 0 or 1 or 255));
            // A valid normal keeps its length (rotation in-plane), so nothing is blended.
            var n = Read(outLabels[Normals]);
            var lengths = new HashSet<int>();
            var input = Read(labels[Normals]);
            for (int r = 0; r < h; r++)
                for (int c = 0; c < w; c++)
                    lengths.Add((int)MathF.Round(1e4f * MathF.Sqrt(input[0, 0, r, c] * input[0, 0, r, c] + input[0, 1, r, c] * input[0, 1, r, c])));
            for (int b = 0; b < 4; b++)
                for (int r = 0; r < h; r++)
                    for (int c = 0; c < w; c++)
                        if (n[b, 0, r, c] != 255)
                        {
                            int length = (int)MathF.Round(1e4f * MathF.Sqrt(n[b, 0, r, c] * n[b, 0, r, c] + n[b, 1, r, c] * n[b, 1, r, c]));
                            Assert.IsTrue(lengths.Contains(length) || lengths.Contains(length - 1) || lengths.Contains(length + 1), $"normal length {length}");
                        }
            seen255 |= seg.Contains(255f);
        }
        Assert.IsTrue(seen255, "some draw left pixels uncovered");
    }

    [TestMethod]
    public void Draws_flip_half_the_images_and_follow_the_NYUD_and_PASCAL_presets()
    {
        var (flip, scale, angle) = Augmenter(AugmentationOptions.Nyud).Draw(600);
        Assert.IsInRange(240, 360, flip.Count(f => f), "p = 0.5");
        CollectionAssert.AreEquivalent(new[] { 1f, 1.2f, 1.5f }, scale.Distinct().ToArray());
        Assert.IsTrue(scale.Count(s => s == 1.5f) > 150, "the three scales are equally likely");
        Assert.IsTrue(angle.All(a => a == 0), "NYUD: no rotation");
        (flip, scale, angle) = Augmenter(AugmentationOptions.Pascal).Draw(600);
        Assert.IsInRange(240, 360, flip.Count(f => f));
        Assert.IsTrue(scale.All(s => s is >= 0.75f and <= 1.25f) && scale.Min() < 0.8f && scale.Max() > 1.2f, "PASCAL: scale uniform in [0.75, 1.25]");
        Assert.IsTrue(angle.All(a => a is >= -20f and <= 20f) && angle.Min() < -18f && angle.Max() > 18f, "PASCAL: angle uniform in [−20°, 20°]");
        Assert.IsTrue(Augmenter(new AugmentationOptions { MaxRotationDegrees = 10 }).Draw(50).Flip.All(f => !f), "Flip = false never flips");
    }

    [TestMethod]
    public void Disabled_augmentation_and_identity_parameters_leave_the_batch_bit_identical()
    {
        var (images, labels) = Batch(2, 5, 6);
        var none = Augmenter(AugmentationOptions.None);
        Assert.IsFalse(none.Enabled);
        var same = none.Apply((images, labels));
        Assert.AreSame(images, same.Images);
        CollectionAssert.AreEqual(labels, same.Labels);
        Assert.IsFalse(new AugmentationOptions { Scales = [1f] }.Enabled);

        var identity = Augmenter().Apply(images, labels, [false, false], [1f, 1f], [0f, 0f]);
        CollectionAssert.AreEqual(images.data<float>().ToArray(), identity.Images.data<float>().ToArray());
        for (int t = 0; t < labels.Length; t++)
            CollectionAssert.AreEqual(labels[t].data<float>().ToArray(), identity.Labels[t].data<float>().ToArray());
    }

    [TestMethod]
    public void Draws_are_reproducible_from_the_seed_and_leak_no_tensors()
    {
        var (images, labels) = Batch(4, 7, 9);
        float[] Run(int seed)
        {
            var augmenter = Augmenter(AugmentationOptions.Pascal, seed);
            using var scope = torch.NewDisposeScope();
            augmenter.Apply((images, labels));
            return augmenter.Apply((images, labels)).Labels[Seg].data<float>().ToArray();
        }
        CollectionAssert.AreEqual(Run(3), Run(3));
        CollectionAssert.AreNotEqual(Run(3), Run(4));

        var augmenter = Augmenter(AugmentationOptions.Nyud);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (torch.NewDisposeScope())
            for (int i = 0; i < 3; i++) augmenter.Apply((images, labels));
        Assert.AreEqual(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [TestMethod]
    public void Options_are_validated_with_messages_that_say_what_to_change()
    {
        foreach (var bad in new[]
        {
            new AugmentationOptions { MinScale = 0f },
            new AugmentationOptions { MinScale = 1.2f, MaxScale = 0.8f },
            new AugmentationOptions { Scales = [1f, -1f] },
            new AugmentationOptions { Scales = [] },
            new AugmentationOptions { Scales = [1.2f], MaxScale = 2f },
            new AugmentationOptions { MaxRotationDegrees = 200f },
            new AugmentationOptions { MaxRotationDegrees = float.NaN },
        })
        {
            var e = Assert.Throws<ArgumentException>(bad.Validate);
            StringAssert.Contains(e.Message, "Augmentation.");
            Assert.Throws<ArgumentException>(() => new TrainingOptions { Augmentation = bad }.Validate());
        }
        Assert.Throws<ArgumentNullException>(() => new TrainingOptions { Augmentation = null! }.Validate());
        AugmentationOptions.Nyud.Validate();
        AugmentationOptions.Pascal.Validate();
        Assert.AreSame(AugmentationOptions.Pascal, AugmentationOptions.Preset("PASCAL"));
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => AugmentationOptions.Preset("cityscapes")).Message, "none, nyud or pascal");
        // The ML.NET trainer checks it when it is built, before any data is read.
        var ml = new MLContext(seed: 1);
        Assert.Throws<ArgumentException>(() => ml.MultiTask().Trainers.Kem(new MultiTaskKemTrainer.Options
        {
            Tasks = [new TaskColumn(TaskSpec.Segmentation(4))],
            Training = new TrainingOptions { Augmentation = AugmentationOptions.Pascal with { MaxRotationDegrees = 181 } },
        }));
    }

    private const int Size = 32;

    private static DenseDataset Scenes(TaskSpec[] tasks, int count, int seed)
    {
        var generator = new SceneGenerator(new SceneOptions { Seed = seed, Width = Size, Height = Size });
        var samples = Enumerable.Range(0, count).Select(generator.Generate).ToArray();
        int n = Size * Size;
        var pixels = new float[count * 3 * n];
        for (int i = 0; i < count; i++)
            for (int p = 0; p < n; p++)
                for (int c = 0; c < 3; c++) pixels[(i * 3 + c) * n + p] = samples[i].Rgb[p * 3 + c];
        float[] Label(TaskKind kind) => samples.SelectMany(s => kind switch
        {
            TaskKind.SemanticSegmentation => s.Segmentation,
            TaskKind.Parts => s.Parts,
            TaskKind.Depth => s.Depth,
            TaskKind.Normals => s.Normals,
            TaskKind.Saliency => s.Saliency,
            _ => s.Boundaries,
        }).ToArray();
        return new DenseDataset(tasks, Size, Size, pixels, tasks.Select(t => Label(t.Kind)).ToArray(), "generated scenes");
    }

    private static readonly TaskSpec[] SceneTasks =
    [
        TaskSpec.Segmentation(SceneGenerator.ClassCount), TaskSpec.PartsOf(SceneGenerator.PartClassCount), TaskSpec.DepthTask(),
        TaskSpec.NormalsTask(), TaskSpec.SaliencyTask(), TaskSpec.BoundariesTask(),
    ];

    private static MultiTaskNetwork SceneNetwork()
    {
        torch.manual_seed(1);
        return new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(SceneTasks) with
        {
            ImageHeight = Size, ImageWidth = Size, Width = 32, Heads = 2,
            Interaction = new InteractionOptions { Kind = InteractionKind.StableKem, MemorySlots = 4, TopK = 3 },
        });
    }

    private static readonly TrainingOptions Recipe = new()
    {
        Epochs = 2, BatchSize = 4, LearningRate = 1e-3, WarmupSteps = 1, Device = ComputeDevice.Cpu, ReportEverySteps = 1,
        Augmentation = AugmentationOptions.Pascal,
    };

    [TestMethod]
    public void Training_with_Pascal_augmentation_on_generated_scenes_stays_finite_and_changes_the_run()
    {
        var train = Scenes(SceneTasks, 8, seed: 5);
        using var net = SceneNetwork();
        var augmented = MultiTaskTrainingLoop.Fit(net, train, null, Recipe);
        Assert.IsTrue(augmented.History.All(e => double.IsFinite(e.TrainLoss) && e.TrainTaskLosses!.Values.All(double.IsFinite)));
        Assert.IsTrue(net.parameters().All(p => p.isfinite().all().item<bool>()));
        using var plain = SceneNetwork();
        var baseline = MultiTaskTrainingLoop.Fit(plain, train, null, Recipe with { Augmentation = AugmentationOptions.None });
        Assert.AreNotEqual(baseline.History[0].TrainLoss, augmented.History[0].TrainLoss, "the training batches were augmented");
    }

    [TestMethod]
    public void Validation_batches_are_never_augmented()
    {
        var train = Scenes(SceneTasks, 4, seed: 6);
        var valid = Scenes(SceneTasks, 4, seed: 7);
        using var net = SceneNetwork();
        var result = MultiTaskTrainingLoop.Fit(net, train, valid, Recipe with { Epochs = 1 });
        // The reported validation loss is the loss of the un-augmented validation batch under the trained weights.
        double expected;
        using (torch.no_grad())
        {
            net.eval();
            var (images, labels) = valid.Batch([0, 1, 2, 3], CPU);
            var outputs = net.forward(images);
            expected = SceneTasks.Select((t, i) => t.LossWeight * TaskLoss.Compute(t, outputs[i], labels[i]).item<float>()).Sum();
        }
        Assert.AreEqual(expected, result.History[0].ValidationLoss!.Value, 1e-4 * Math.Abs(expected));
    }
}
