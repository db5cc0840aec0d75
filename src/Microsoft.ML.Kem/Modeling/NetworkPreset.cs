using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>The named configurations of MODEL-SPEC §1 ("Configurations to ship"), for options classes that pick one by name.</summary>
public enum NetworkPreset
{
    /// <summary>No preset: every size comes from the caller's own fields.</summary>
    Custom,
    /// <summary><see cref="MultiTaskNetworkOptions.Tiny"/>: 64×64, conv stem, d 64, m 8 (unit tests).</summary>
    Tiny,
    /// <summary><see cref="MultiTaskNetworkOptions.Small"/>: TinyViT p 8, d 128, 4 blocks, m 20 (CPU training).</summary>
    Small,
    /// <summary><see cref="MultiTaskNetworkOptions.Dev"/>: TinySwin, stride 8, d 128, a 2-block neck (quick GPU runs).</summary>
    Dev,
    /// <summary><see cref="MultiTaskNetworkOptions.Gpu448"/>: TinySwin, stride 16, d 384, h 6 (the recommended GPU model).</summary>
    Gpu448,
    /// <summary><see cref="MultiTaskNetworkOptions.Paper"/>: TinySwin, stride 8, d 256, window task blocks (MTFormer's grid).</summary>
    Paper,
}

/// <summary>Builds a <see cref="NetworkPreset"/> at a given image size, and says which sizes it is meant for.</summary>
public static class NetworkPresets
{
    /// <summary>The preset's options at <paramref name="height"/>×<paramref name="width"/> (not validated: callers may override fields first).</summary>
    public static MultiTaskNetworkOptions Create(NetworkPreset preset, int height, int width, params TaskSpec[] tasks) => preset switch
    {
        NetworkPreset.Tiny => MultiTaskNetworkOptions.Tiny(tasks) with { ImageHeight = height, ImageWidth = width },
        NetworkPreset.Small => MultiTaskNetworkOptions.Small(height, width, tasks),
        NetworkPreset.Dev => MultiTaskNetworkOptions.Dev(height, width, tasks),
        NetworkPreset.Gpu448 => MultiTaskNetworkOptions.Gpu448(height, width, tasks),
        NetworkPreset.Paper => MultiTaskNetworkOptions.Paper(height, width, tasks),
        NetworkPreset.Custom => throw new ArgumentException("NetworkPreset.Custom has no sizes of its own: set the network fields, or pick Tiny, Small, Dev, Gpu448 or Paper."),
        _ => throw new ArgumentOutOfRangeException(nameof(preset), preset, "Unknown preset; use Tiny, Small, Dev, Gpu448 or Paper."),
    };

    /// <summary>
    /// <paramref name="mine"/> with the preset-held fields (backbone, stride, width, heads, depths, task blocks, interaction) taken
    /// from <paramref name="preset"/> unless <paramref name="isSet"/> says the caller set them (asked with the
    /// <see cref="MultiTaskNetworkOptions"/> property name); every other field is <paramref name="mine"/>'s. A null preset gives
    /// <paramref name="mine"/> unchanged (Custom).
    /// </summary>
    public static MultiTaskNetworkOptions Overlay(MultiTaskNetworkOptions? preset, MultiTaskNetworkOptions mine, Func<string, bool> isSet)
    {
        ArgumentNullException.ThrowIfNull(mine);
        ArgumentNullException.ThrowIfNull(isSet);
        if (preset is null) return mine;
        T Pick<T>(string name, T own, T fromPreset) => isSet(name) ? own : fromPreset;
        return mine with
        {
            Backbone = Pick(nameof(mine.Backbone), mine.Backbone, preset.Backbone),
            TokenStride = Pick(nameof(mine.TokenStride), mine.TokenStride, preset.TokenStride),
            Width = Pick(nameof(mine.Width), mine.Width, preset.Width),
            Heads = Pick(nameof(mine.Heads), mine.Heads, preset.Heads),
            BackboneDepth = Pick(nameof(mine.BackboneDepth), mine.BackboneDepth, preset.BackboneDepth),
            EncoderDepth = Pick(nameof(mine.EncoderDepth), mine.EncoderDepth, preset.EncoderDepth),
            DecoderDepth = Pick(nameof(mine.DecoderDepth), mine.DecoderDepth, preset.DecoderDepth),
            TaskBlocks = Pick(nameof(mine.TaskBlocks), mine.TaskBlocks, preset.TaskBlocks),
            Interaction = Pick(nameof(mine.Interaction), mine.Interaction, preset.Interaction),
        };
    }

    /// <summary>The input sizes the spec's table gives for <paramref name="preset"/> (MODEL-SPEC §1): NYUD first, then PASCAL.</summary>
    public static IReadOnlyList<(string Dataset, int Height, int Width)> IntendedSizes(NetworkPreset preset) => preset switch
    {
        NetworkPreset.Tiny => [("any dataset", 64, 64)],
        NetworkPreset.Small => [("NYUD", 96, 128), ("PASCAL", 128, 128)],
        NetworkPreset.Dev => [("NYUD", 240, 320), ("PASCAL", 256, 256)],
        NetworkPreset.Gpu448 => [("NYUD", 448, 576), ("PASCAL", 512, 512)],
        NetworkPreset.Paper => [("NYUD", 480, 640), ("PASCAL", 512, 512)],
        _ => [],
    };

    /// <summary>
    /// A sentence for messages: which sizes <paramref name="preset"/> is meant for and what other sizes must be (multiples of the
    /// token stride, and of the Swin patch size for the TinySwin presets).
    /// </summary>
    public static string Describe(NetworkPreset preset)
    {
        var sizes = IntendedSizes(preset);
        if (sizes.Count == 0) return $"{preset} has no intended size.";
        var o = Create(preset, sizes[0].Height, sizes[0].Width, TaskSpec.DepthTask());
        int multiple = o.HasSwinBackbone ? Lcm(o.TokenStride, o.ScaleEncoder.FirstStride) : o.TokenStride;
        string intended = string.Join(" or ", sizes.Select(s => $"{s.Dataset} {s.Height}×{s.Width}").Distinct());
        return $"Configuration {preset} is meant for {intended} (MODEL-SPEC §1); other sizes work when height and width are multiples of {multiple}";
    }

    private static int Lcm(int a, int b)
    {
        int g = a, h = b;
        while (h != 0) (g, h) = (h, g % h);
        return a / g * b;
    }
}
