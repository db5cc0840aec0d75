using System.Globalization;

namespace Microsoft.ML.Kem.Data;

/// <summary>
/// Names in the NYUD-v2 multi-task folder layout as distributed with MTI-Net / MTFormer (MODEL-SPEC §10), plus two
/// folders of ours for generated scenes (<c>saliency/</c>, <c>parts/</c>):
/// <code>
/// images/&lt;id&gt;.png         RGB
/// segmentation/&lt;id&gt;.png   uint8, 0 = void, class c stored as c + 1
/// depth/&lt;id&gt;.npy          float32 H×W metres, 0 = missing
/// normals/&lt;id&gt;.npy        float32 H×W×3 (channels last)
/// edge/&lt;id&gt;.npy           float32 H×W, 0/1
/// saliency/&lt;id&gt;.png       uint8, 0 or 255
/// parts/&lt;id&gt;.png          part index (indexed PNG)
/// gt_sets/train.txt, gt_sets/val.txt   one id per line
/// </code>
/// </summary>
public static class NyudLayout
{
    /// <summary>RGB images.</summary>
    public const string ImagesFolder = "images";
    /// <summary>Semantic segmentation masks.</summary>
    public const string SegmentationFolder = "segmentation";
    /// <summary>Depth maps.</summary>
    public const string DepthFolder = "depth";
    /// <summary>Surface normals.</summary>
    public const string NormalsFolder = "normals";
    /// <summary>Boundary maps.</summary>
    public const string EdgeFolder = "edge";
    /// <summary>Saliency masks (generated scenes only).</summary>
    public const string SaliencyFolder = "saliency";
    /// <summary>Part masks (generated scenes only).</summary>
    public const string PartsFolder = "parts";
    /// <summary>Split lists.</summary>
    public const string SplitsFolder = "gt_sets";
    /// <summary>Training split name.</summary>
    public const string TrainSplit = "train";
    /// <summary>Validation split name.</summary>
    public const string ValSplit = "val";

    /// <summary>Raw segmentation value of void pixels; class c is stored as c + 1.</summary>
    public const byte RawVoid = 0;

    /// <summary>NYUD's segmentation convention (MODEL-SPEC §10): raw 0 (void) and raw 255 → 255 (ignore), class c → c − 1.</summary>
    public static float SegmentationLabel(float raw) => raw is RawVoid or 255 ? 255f : raw - 1;

    /// <summary>The id of image <paramref name="index"/>: six digits, zero-padded (<c>000123</c>).</summary>
    public static string IdOf(int index) => index.ToString("D6", CultureInfo.InvariantCulture);

    /// <summary>Path of a split's id list: <c>root/gt_sets/&lt;split&gt;.txt</c>.</summary>
    public static string SplitFile(string root, string split) => Path.Combine(root, SplitsFolder, split + ".txt");

    /// <summary>Path of one file: <c>root/&lt;folder&gt;/&lt;id&gt;&lt;extension&gt;</c>.</summary>
    public static string FileOf(string root, string folder, string id, string extension) => Path.Combine(root, folder, id + extension);
}
