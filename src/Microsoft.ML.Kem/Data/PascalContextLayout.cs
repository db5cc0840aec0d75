namespace Microsoft.ML.Kem.Data;

/// <summary>
/// Names in the PASCAL-Context multi-task folder layout (<c>PASCAL_MT/</c>, as distributed with ASTMT / MTI-Net / MTFormer;
/// MODEL-SPEC §10):
/// <code>
/// JPEGImages/&lt;id&gt;.jpg
/// semseg/VOC12/&lt;id&gt;.png or semseg/pascal-context/&lt;id&gt;.png   uint8, 0 = background, 1..20 VOC classes, 255 ignore
/// human_parts/&lt;id&gt;.mat        MAT v5 struct 'anno' (PASCAL-Part)
/// sal_distill/&lt;id&gt;.png        uint8, label = value/255 &gt; 0.5
/// normals_distill/&lt;id&gt;.png    (optional) RGB, 2·v/255 − 1
/// pascal-context/trainval/&lt;id&gt;.mat   (optional) field LabelMap; edges = thinned non-zero Laplacian
/// ImageSets/Context/train.txt, val.txt
/// </code>
/// </summary>
public static class PascalContextLayout
{
    /// <summary>JPEG images.</summary>
    public const string ImagesFolder = "JPEGImages";
    /// <summary>Semantic segmentation, VOC 2012 copy (searched first, as the public loaders do).</summary>
    public const string SemsegVocFolder = "semseg/VOC12";
    /// <summary>Semantic segmentation, PASCAL-Context copy (searched second).</summary>
    public const string SemsegContextFolder = "semseg/pascal-context";
    /// <summary>Human-parts annotations (.mat).</summary>
    public const string HumanPartsFolder = "human_parts";
    /// <summary>Distilled saliency.</summary>
    public const string SaliencyFolder = "sal_distill";
    /// <summary>Distilled surface normals.</summary>
    public const string NormalsFolder = "normals_distill";
    /// <summary>PASCAL-Context label maps (.mat, variable LabelMap), the source of the edges.</summary>
    public const string ContextLabelsFolder = "pascal-context/trainval";
    /// <summary>Split lists.</summary>
    public const string SplitsFolder = "ImageSets/Context";
    /// <summary>Semantic classes: background + 20 VOC classes.</summary>
    public const int SemanticClasses = 21;

    /// <summary>The 21 semantic class names.</summary>
    public static IReadOnlyList<string> SemanticClassNames { get; } =
    [
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    ];

    /// <summary>Path of a split's id list: <c>root/ImageSets/Context/&lt;split&gt;.txt</c>.</summary>
    public static string SplitFile(string root, string split) => Path.Combine(root, SplitsFolder, split + ".txt");

    /// <summary>Path of one file: <c>root/&lt;folder&gt;/&lt;id&gt;&lt;extension&gt;</c>.</summary>
    public static string FileOf(string root, string folder, string id, string extension) => Path.Combine(root, folder, id + extension);

    /// <summary>The ids of <paramref name="split"/>, in file order (blank lines skipped); the list must exist.</summary>
    public static IReadOnlyList<string> ReadSplit(string root, string split)
    {
        string path = SplitFile(root, split);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Split list '{path}' for split '{split}' is missing.", path);
        return File.ReadAllLines(path).Select(line => line.Trim()).Where(line => line.Length > 0).ToArray();
    }

    /// <summary>
    /// Edges from a PASCAL-Context label map (row-major, class ids): pixels where the 4-neighbour Laplacian
    /// (kernel [0 1 0; 1 −4 1; 0 1 0], borders mirrored without repeating the edge pixel) is non-zero, thinned to one pixel
    /// width. The public loaders thin with scikit-image's <c>thin</c>; we use Zhang–Suen thinning, so a few pixels differ.
    /// </summary>
    public static float[] EdgesFromLabelMap(double[] labels, int height, int width)
    {
        if (labels.Length != height * width) throw new ArgumentException($"Label map has {labels.Length} values; expected {height}×{width}.");
        var edges = new byte[labels.Length];
        int Mirror(int i, int n) => n == 1 ? 0 : i < 0 ? -i : i >= n ? 2 * n - 2 - i : i;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                double at(int yy, int xx) => labels[Mirror(yy, height) * width + Mirror(xx, width)];
                double laplacian = at(y - 1, x) + at(y + 1, x) + at(y, x - 1) + at(y, x + 1) - 4 * labels[y * width + x];
                edges[y * width + x] = laplacian != 0 ? (byte)1 : (byte)0;
            }
        Tasks.ZhangSuenThinning.Thin(edges, height, width);
        return edges.Select(v => (float)v).ToArray();
    }

    /// <summary>Reads the <c>LabelMap</c> variable of a PASCAL-Context .mat file as a row-major map.</summary>
    public static (double[] Labels, int Height, int Width) ReadLabelMap(string path)
    {
        var variables = MatFile.Read(path);
        if (!variables.TryGetValue("LabelMap", out var array) || array is not MatNumericArray { Dimensions.Length: 2 } map)
            throw new InvalidDataException($"'{path}' has no 2-D numeric variable 'LabelMap' (found: {string.Join(", ", variables.Keys)}).");
        return (map.ToRowMajor(), map.Rows, map.Dimensions[1]);
    }
}
