using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.Kem.Training;

namespace Kem.Tests.Trainers;

/// <summary>The trainer's Options.Configuration selects the spec's named configurations (MODEL-SPEC §1); fields set explicitly win.</summary>
[TestClass]
public sealed class TrainerPresetTests
{
    private static readonly TaskSpec[] Tasks = [TaskSpec.Segmentation(40), TaskSpec.DepthTask()];

    private static MultiTaskKemTrainer.Options OptionsWith(NetworkPreset preset) =>
        new() { Tasks = [.. Tasks.Select(t => new TaskColumn(t))], Configuration = preset };

    private static MultiTaskNetworkOptions Static(NetworkPreset preset, int h, int w) => preset switch
    {
        NetworkPreset.Tiny => MultiTaskNetworkOptions.Tiny(Tasks) with { ImageHeight = h, ImageWidth = w },
        NetworkPreset.Small => MultiTaskNetworkOptions.Small(h, w, Tasks),
        NetworkPreset.Dev => MultiTaskNetworkOptions.Dev(h, w, Tasks),
        NetworkPreset.Gpu448 => MultiTaskNetworkOptions.Gpu448(h, w, Tasks),
        _ => MultiTaskNetworkOptions.Paper(h, w, Tasks),
    };

    private static void AssertSame(MultiTaskNetworkOptions expected, MultiTaskNetworkOptions actual)
    {
        CollectionAssert.AreEqual(expected.Tasks.ToArray(), actual.Tasks.ToArray());
        Assert.AreEqual(expected, actual with { Tasks = expected.Tasks }, "every size equals the static preset's");
    }

    [TestMethod]
    [DataRow(NetworkPreset.Tiny, 64, 64)]
    [DataRow(NetworkPreset.Small, 96, 128)]
    [DataRow(NetworkPreset.Dev, 240, 320)]
    [DataRow(NetworkPreset.Gpu448, 448, 576)]
    [DataRow(NetworkPreset.Paper, 480, 640)]
    public void Configuration_builds_the_same_options_as_the_static_preset(NetworkPreset preset, int h, int w)
    {
        var built = OptionsWith(preset).NetworkOptions(h, w);
        AssertSame(Static(preset, h, w), built);
        AssertSame(NetworkPresets.Create(preset, h, w, Tasks), built);
        built.Validate();
    }

    [TestMethod]
    public void Dev_gives_a_two_block_neck_where_Custom_keeps_the_fields()
    {
        var custom = new MultiTaskKemTrainer.Options { Tasks = [.. Tasks.Select(t => new TaskColumn(t))], Backbone = BackboneKind.TinySwin };
        Assert.AreEqual(4, custom.NetworkOptions(240, 320).BackboneDepth, "Custom: today's behaviour, the field's default");
        Assert.AreEqual(2, OptionsWith(NetworkPreset.Dev).NetworkOptions(240, 320).BackboneDepth, "Dev: the spec's 2 window blocks");
    }

    [TestMethod]
    public void A_field_set_explicitly_overrides_the_preset()
    {
        var options = OptionsWith(NetworkPreset.Dev);
        options.Width = 64;
        options.TaskBlocks = BlockAttention.Window;
        options.Interaction = new InteractionOptions { MemorySlots = 5, Kind = InteractionKind.Kem };
        var built = options.NetworkOptions(240, 320);
        var expected = MultiTaskNetworkOptions.Dev(240, 320, Tasks) with
        {
            Width = 64, TaskBlocks = BlockAttention.Window, Interaction = new InteractionOptions { MemorySlots = 5, Kind = InteractionKind.Kem },
        };
        AssertSame(expected, built);
        // setting a field to the value it already had is still explicit: Gpu448's d 384 gives way to 128
        var gpu = OptionsWith(NetworkPreset.Gpu448);
        gpu.Width = 128;
        Assert.AreEqual(128, gpu.NetworkOptions(448, 576).Width);
        Assert.AreEqual(6, gpu.NetworkOptions(448, 576).Heads);
    }

    [TestMethod]
    public void Dev_at_an_unusual_size_still_builds_when_it_is_a_multiple_of_the_stride()
    {
        OptionsWith(NetworkPreset.Dev).NetworkOptions(64, 64).Validate();
    }

    [TestMethod]
    public void Preset_at_a_size_it_cannot_build_names_its_sizes_and_the_image_size()
    {
        const int size = 36; // a multiple of the patch size 4, not of the token stride 8
        var ml = new MLContext(seed: 1);
        var data = TinyData.Make(TinyData.SegDepth, 2, size, size, seed: 5);
        var view = ml.Data.LoadFromEnumerable(Enumerable.Range(0, data.Count).Select(i => new SizedRow
        {
            Image = data.Image(i).ToArray(), Segmentation = data.Label(0, i).ToArray(), Depth = data.Label(1, i).ToArray(),
        }));
        var trainer = ml.MultiTask().Trainers.Kem(new MultiTaskKemTrainer.Options
        {
            Tasks = [new TaskColumn(TinyData.Segmentation), new TaskColumn(TinyData.Depth)], Configuration = NetworkPreset.Dev,
            Training = new TrainingOptions { Epochs = 1, Device = ComputeDevice.Cpu },
        });
        var error = Assert.ThrowsExactly<ArgumentException>(() => trainer.Fit(view));
        Assert.Contains("Dev", error.Message);
        Assert.Contains("240×320", error.Message);
        Assert.Contains("256×256", error.Message);
        Assert.Contains("36×36", error.Message);
        Assert.Contains("multiples of 8", error.Message);
    }

    public sealed class SizedRow
    {
        [Microsoft.ML.Data.VectorType(3, 36, 36)] public float[] Image { get; set; } = [];
        [Microsoft.ML.Data.VectorType(1, 36, 36)] public float[] Segmentation { get; set; } = [];
        [Microsoft.ML.Data.VectorType(1, 36, 36)] public float[] Depth { get; set; } = [];
    }
}
