namespace Microsoft.ML.Kem.Data;

/// <summary>How stored label values become training labels (MODEL-SPEC §8, §10).</summary>
public enum DenseLabelEncoding
{
    /// <summary>Values as stored: PNG indices / 16-bit values, or .npy floats.</summary>
    Identity,
    /// <summary>NYUD-v2 segmentation PNG: raw 0 (void) → 255 (ignore), class c → c − 1.</summary>
    NyudSegmentation,
    /// <summary>8-bit map (e.g. PASCAL sal_distill): 255 stays "ignore" only in index PNGs; otherwise value/255 &gt; 0.5 → 1, else 0.</summary>
    Binary,
    /// <summary>8-bit RGB normals PNG: 2·v/255 − 1 per channel.</summary>
    NormalsFromRgb,
    /// <summary>16-bit depth PNG in millimetres: value/1000 metres (0 stays 0 = missing).</summary>
    DepthMillimetres,
}

/// <summary>A dense label map at its stored size: planes×H×W values, row-major, training conventions applied.</summary>
/// <param name="Values">planes×H×W values.</param>
/// <param name="Planes">1, or 3 for normals.</param>
/// <param name="Height">Rows.</param>
/// <param name="Width">Pixels per row.</param>
/// <param name="FitsAnySize">True for a constant map (e.g. all-ignore human parts of an image without people) that needs no size check.</param>
public sealed record DenseLabelMap(float[] Values, int Planes, int Height, int Width, bool FitsAnySize = false);

/// <summary>
/// Reads dense label files ourselves (ImageAnalytics decodes colour and cuts 16-bit to 8): index/gray PNG (8 or 16 bit),
/// RGB PNG (normals), and .npy (H×W, H×W×C or C×H×W). Resizes with nearest neighbour only. Errors name the file.
/// </summary>
public static class DenseLabelFile
{
    /// <summary>
    /// Reads <paramref name="path"/> as <paramref name="planes"/> planes of <paramref name="height"/>×<paramref name="width"/>
    /// (planes×H×W, row-major), applying <paramref name="encoding"/> then nearest-neighbour resizing.
    /// </summary>
    public static float[] Read(string path, int planes, int height, int width, DenseLabelEncoding encoding = DenseLabelEncoding.Identity)
    {
        var map = ReadNative(path, planes, encoding);
        return ResizeNearest(map.Values, planes, map.Height, map.Width, height, width);
    }

    /// <summary>
    /// Reads <paramref name="path"/> at its stored size as <paramref name="planes"/> planes (planes×H×W, row-major), applying
    /// <paramref name="encoding"/>. Throws naming the file when it is missing, unreadable or has another number of planes.
    /// </summary>
    public static DenseLabelMap ReadNative(string path, int planes, DenseLabelEncoding encoding = DenseLabelEncoding.Identity)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Label file '{path}' does not exist. Check the path column and the folder given to LoadDenseLabels.", path);
        var (data, srcPlanes, srcH, srcW) = Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".png" => ReadPng(path, encoding),
            ".npy" => ReadNpy(path, planes),
            var ext => throw new NotSupportedException($"Label file '{path}': extension '{ext}' is not supported; use .png or .npy."),
        };
        if (srcPlanes != planes)
            throw new InvalidDataException($"Label file '{path}' has {srcPlanes} plane(s); this task needs {planes}.");
        if (encoding == DenseLabelEncoding.NyudSegmentation)
            for (int i = 0; i < data.Length; i++) data[i] = NyudLayout.SegmentationLabel(data[i]);
        return new DenseLabelMap(data, planes, srcH, srcW);
    }

    /// <summary>Nearest-neighbour resize of planes×srcH×srcW to planes×H×W (source pixel ⌊y·srcH/H⌋, ⌊x·srcW/W⌋).</summary>
    public static float[] ResizeNearest(float[] source, int planes, int srcH, int srcW, int height, int width)
    {
        if (srcH == height && srcW == width) return source;
        var result = new float[planes * height * width];
        for (int p = 0; p < planes; p++)
            for (int y = 0; y < height; y++)
            {
                int sy = (int)((long)y * srcH / height);
                for (int x = 0; x < width; x++)
                    result[(p * height + y) * width + x] = source[(p * srcH + sy) * srcW + (int)((long)x * srcW / width)];
            }
        return result;
    }

    private static (float[] Data, int Planes, int Height, int Width) ReadPng(string path, DenseLabelEncoding encoding)
    {
        var png = PngCodec.Read(path);
        int n = png.Width * png.Height, channels = png.Channels;
        if (encoding == DenseLabelEncoding.NormalsFromRgb)
        {
            if (channels < 3 || png.BitDepth != 8)
                throw new InvalidDataException($"Label file '{path}': normals PNG must be 8-bit RGB, it is {png.ColorType} {png.BitDepth}-bit.");
            var normals = new float[3 * n];
            for (int i = 0; i < n; i++)
                for (int c = 0; c < 3; c++)
                    normals[c * n + i] = 2f * png.Samples[i * channels + c] / 255f - 1f;
            return (normals, 3, png.Height, png.Width);
        }
        if (channels != 1)
            throw new InvalidDataException($"Label file '{path}' is a {png.ColorType} PNG; a label map must be gray or indexed (one value per pixel). Colour-coded masks must be converted to index PNGs first.");
        var values = new float[n];
        bool indexed = png.ColorType == Data.PngColorType.Indexed;
        for (int i = 0; i < n; i++)
        {
            float v = png.Samples[i];
            values[i] = encoding switch
            {
                DenseLabelEncoding.Binary => indexed && v == 255 ? 255f : (v / 255f > 0.5f ? 1f : 0f),
                DenseLabelEncoding.DepthMillimetres => v / 1000f,
                _ => v,
            };
        }
        return (values, 1, png.Height, png.Width);
    }

    private static (float[] Data, int Planes, int Height, int Width) ReadNpy(string path, int planes)
    {
        var array = NpyFile.Read(path);
        var s = array.Shape;
        switch (s.Length)
        {
            case 2:
                return (array.Data, 1, s[0], s[1]);
            case 3 when s[0] == planes && s[2] != planes:
                return (array.Data, planes, s[1], s[2]);
            case 3:
                // H×W×C on disk (NYUD normals) → C×H×W planes
                int h = s[0], w = s[1], c = s[2];
                var chw = new float[array.Data.Length];
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        for (int k = 0; k < c; k++)
                            chw[(k * h + y) * w + x] = array.Data[(y * w + x) * c + k];
                return (chw, c, h, w);
            default:
                throw new InvalidDataException($"Label file '{path}' has shape [{string.Join(", ", s)}]; expected H×W, H×W×C or C×H×W.");
        }
    }
}
