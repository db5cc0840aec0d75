namespace Microsoft.ML.Kem.Data;

/// <summary>
/// One NYUD-style sample with training conventions applied (MODEL-SPEC §8, §10). Maps are row-major H×W.
/// Optional tasks are null when the dataset has no folder for them.
/// </summary>
/// <param name="Id">Sample id.</param>
/// <param name="Width">Pixels per row.</param>
/// <param name="Height">Rows.</param>
/// <param name="Rgb">H×W×3 interleaved 8-bit colour.</param>
/// <param name="Segmentation">Class index (raw − 1); void (raw 0) and raw 255 become 255 = ignore.</param>
/// <param name="Depth">Metres; 0 = missing measurement, kept as 0.</param>
/// <param name="Normals">3×H×W planes (read from the file's H×W×3), or null.</param>
/// <param name="Edges">0/1 boundaries, or null.</param>
/// <param name="Saliency">0/1 (stored value / 255 &gt; 0.5), or null.</param>
/// <param name="Parts">Part index as stored, or null.</param>
public sealed record NyudSample(
    string Id, int Width, int Height, byte[] Rgb, float[] Segmentation, float[] Depth,
    float[]? Normals, float[]? Edges, float[]? Saliency, float[]? Parts);

/// <summary>
/// Reads a dataset in the NYUD-v2 multi-task layout (<see cref="NyudLayout"/>): the real release (with images converted to
/// PNG) or one written by <see cref="NyudLayoutWriter"/>. Also accepts the ATRC copy's PNG normals (2·v/255 − 1) and
/// edges (v/255). Every error names the file; a missing file also names the split list that referenced it.
/// </summary>
public sealed class NyudLayoutReader
{
    /// <summary>Opens the dataset at <paramref name="root"/>; the folder must exist.</summary>
    public NyudLayoutReader(string root)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"NYUD dataset root '{root}' does not exist.");
        Root = root;
    }

    /// <summary>Dataset root folder.</summary>
    public string Root { get; }

    /// <summary>The ids listed in <c>gt_sets/&lt;split&gt;.txt</c>, in file order (blank lines skipped, whitespace trimmed).</summary>
    public IReadOnlyList<string> ReadSplit(string split)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(split);
        string path = NyudLayout.SplitFile(Root, split);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Split list '{path}' for split '{split}' is missing.", path);
        return File.ReadAllLines(path).Select(line => line.Trim()).Where(line => line.Length > 0).ToArray();
    }

    /// <summary>Reads the image and every available label of sample <paramref name="id"/> of <paramref name="split"/>.</summary>
    public NyudSample Read(string split, string id)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(split);
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        var files = new SampleFiles(Root, split, id);

        string imagePath = files.Required(NyudLayout.ImagesFolder, ".png", ".jpg");
        if (imagePath.EndsWith(".jpg", StringComparison.Ordinal))
            throw new NotSupportedException($"'{imagePath}': JPEG decoding is not built in; convert the images to PNG (same name, .png).");
        PngImage image = PngCodec.Read(imagePath);
        int width = image.Width, height = image.Height;

        string segmentationPath = files.Required(NyudLayout.SegmentationFolder, ".png");
        PixelMap<byte> raw = PngCodec.ReadLabelIndices(segmentationPath);
        CheckSize(segmentationPath, raw.Width, raw.Height, width, height);
        var segmentation = new float[raw.Values.Length];
        for (int i = 0; i < segmentation.Length; i++)
            segmentation[i] = NyudLayout.SegmentationLabel(raw.Values[i]);

        string depthPath = files.Required(NyudLayout.DepthFolder, ".npy");
        float[] depth = ReadPlane(depthPath, width, height);

        return new NyudSample(id, width, height, image.ToRgb8(), segmentation, depth,
            ReadNormals(files.Optional(NyudLayout.NormalsFolder, ".npy", ".png"), width, height),
            ReadBinaryOrScaled(files.Optional(NyudLayout.EdgeFolder, ".npy", ".png"), width, height, threshold: false),
            ReadBinaryOrScaled(files.Optional(NyudLayout.SaliencyFolder, ".png"), width, height, threshold: true),
            ReadIndices(files.Optional(NyudLayout.PartsFolder, ".png"), width, height));
    }

    /// <summary>Finds a sample's file per task folder; a folder that exists must hold the file.</summary>
    private sealed class SampleFiles(string root, string split, string id)
    {
        public string Required(string folder, params string[] extensions) =>
            Find(folder, extensions) ?? throw Missing(NyudLayout.FileOf(root, folder, id, extensions[0]));

        /// <summary>Null when the dataset has no such task folder.</summary>
        public string? Optional(string folder, params string[] extensions) =>
            Directory.Exists(Path.Combine(root, folder)) ? Required(folder, extensions) : null;

        private string? Find(string folder, string[] extensions) =>
            extensions.Select(extension => NyudLayout.FileOf(root, folder, id, extension)).FirstOrDefault(File.Exists);

        private FileNotFoundException Missing(string path) =>
            new($"'{path}' is missing; sample '{id}' is listed in split '{split}' ('{NyudLayout.SplitFile(root, split)}').", path);
    }

    private static void CheckSize(string path, int width, int height, int imageWidth, int imageHeight)
    {
        if (width != imageWidth || height != imageHeight)
            throw new InvalidDataException($"'{path}' is {width}×{height} but its image is {imageWidth}×{imageHeight}.");
    }

    /// <summary>An H×W (or H×W×1) .npy plane.</summary>
    private static float[] ReadPlane(string path, int width, int height)
    {
        NpyArray array = NpyFile.Read(path);
        bool fits = array.Shape.Length is 2 or 3 && array.Shape[0] == height && array.Shape[1] == width && (array.Shape.Length == 2 || array.Shape[2] == 1);
        if (!fits)
            throw new InvalidDataException($"'{path}' has shape ({string.Join(", ", array.Shape)}); expected ({height}, {width}) to match its image.");
        return array.Data;
    }

    /// <summary>Normals: .npy H×W×3 or ATRC .png (2·v/255 − 1), returned as 3×H×W planes.</summary>
    private static float[]? ReadNormals(string? path, int width, int height)
    {
        if (path is null)
            return null;
        int pixels = width * height;
        float[] channelsLast;
        if (path.EndsWith(".npy", StringComparison.Ordinal))
        {
            NpyArray array = NpyFile.Read(path);
            if (array.Shape is not [var h, var w, 3] || h != height || w != width)
                throw new InvalidDataException($"'{path}' has shape ({string.Join(", ", array.Shape)}); expected ({height}, {width}, 3) to match its image.");
            channelsLast = array.Data;
        }
        else
        {
            PngImage png = PngCodec.Read(path);
            CheckSize(path, png.Width, png.Height, width, height);
            channelsLast = png.ToRgb8().Select(v => 2f * v / 255f - 1f).ToArray();
        }
        var planes = new float[3 * pixels];
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < 3; c++)
                planes[c * pixels + i] = channelsLast[3 * i + c];
        return planes;
    }

    /// <summary>.npy values as stored, or a gray PNG as v/255 (edges) or v/255 &gt; 0.5 (saliency).</summary>
    private static float[]? ReadBinaryOrScaled(string? path, int width, int height, bool threshold)
    {
        if (path is null)
            return null;
        if (path.EndsWith(".npy", StringComparison.Ordinal))
            return ReadPlane(path, width, height);
        PixelMap<byte> map = PngCodec.ReadLabelIndices(path);
        CheckSize(path, map.Width, map.Height, width, height);
        return map.Values.Select(v => threshold ? (v / 255f > 0.5f ? 1f : 0f) : v / 255f).ToArray();
    }

    private static float[]? ReadIndices(string? path, int width, int height)
    {
        if (path is null)
            return null;
        PixelMap<byte> map = PngCodec.ReadLabelIndices(path);
        CheckSize(path, map.Width, map.Height, width, height);
        return map.Values.Select(v => (float)v).ToArray();
    }
}
