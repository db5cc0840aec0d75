namespace Microsoft.ML.Kem.Data;

/// <summary>How image pixels are interpolated when an image is resized to the network's input size.</summary>
public enum ImageResampling
{
    /// <summary>Bicubic (Keys kernel, a = −0.75, as OpenCV's INTER_CUBIC that the public loaders use). Default.</summary>
    Bicubic,
    /// <summary>Bilinear.</summary>
    Bilinear,
}

/// <summary>
/// Separable image resizing on pixel centres (source coordinate = (x + ½)·src/dst − ½, borders replicated), the convention of
/// OpenCV's <c>resize</c> (MODEL-SPEC §11 step 3: image cubic, labels nearest — labels use <see cref="DenseLabelFile.ResizeNearest"/>).
/// Results are clamped to [0, 255].
/// </summary>
public static class ImageResize
{
    private const double CubicA = -0.75;

    /// <summary>
    /// Interleaved 8-bit RGB (H×W×3) → three planes 3×H'×W' of floats 0..255 (ExtractPixels' layout, planes not interleaved).
    /// </summary>
    public static float[] RgbToPlanes(ReadOnlySpan<byte> rgb, int height, int width, int outHeight, int outWidth, ImageResampling resampling = ImageResampling.Bicubic)
    {
        if (height < 1 || width < 1 || outHeight < 1 || outWidth < 1)
            throw new ArgumentOutOfRangeException(nameof(outHeight), $"Sizes must be positive: {height}×{width} → {outHeight}×{outWidth}.");
        if (rgb.Length != 3 * height * width)
            throw new ArgumentException($"RGB buffer has {rgb.Length} bytes; expected 3×{height}×{width}.", nameof(rgb));
        int pixels = height * width;
        var planes = new float[3 * pixels];
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < 3; c++)
                planes[c * pixels + i] = rgb[3 * i + c];
        if (height == outHeight && width == outWidth) return planes;
        var result = new float[3 * outHeight * outWidth];
        for (int c = 0; c < 3; c++)
            ResizePlane(planes.AsSpan(c * pixels, pixels), height, width, result.AsSpan(c * outHeight * outWidth, outHeight * outWidth), outHeight, outWidth, resampling);
        return result;
    }

    /// <summary>Resizes one H×W plane into <paramref name="output"/> (H'×W'), clamped to [0, 255].</summary>
    public static void ResizePlane(ReadOnlySpan<float> plane, int height, int width, Span<float> output, int outHeight, int outWidth, ImageResampling resampling) =>
        Resample(plane, height, width, output, outHeight, outWidth, resampling, clampToBytes: true);

    /// <summary>
    /// <see cref="ResizePlane"/> for any values (scores, metres): clamped to [0, 255] only when <paramref name="clampToBytes"/>.
    /// Bilinear equals PyTorch's <c>interpolate(mode="bilinear", align_corners=False)</c> without antialiasing.
    /// </summary>
    internal static void Resample(ReadOnlySpan<float> plane, int height, int width, Span<float> output, int outHeight, int outWidth, ImageResampling resampling, bool clampToBytes)
    {
        var (xIndex, xWeight, taps) = Taps(width, outWidth, resampling);
        var (yIndex, yWeight, _) = Taps(height, outHeight, resampling);
        var rows = new float[height * outWidth];                       // horizontal pass: H×W'
        for (int y = 0; y < height; y++)
            for (int x = 0; x < outWidth; x++)
            {
                double sum = 0;
                for (int k = 0; k < taps; k++) sum += xWeight[x * taps + k] * plane[y * width + xIndex[x * taps + k]];
                rows[y * outWidth + x] = (float)sum;
            }
        for (int y = 0; y < outHeight; y++)                            // vertical pass: H'×W'
            for (int x = 0; x < outWidth; x++)
            {
                double sum = 0;
                for (int k = 0; k < taps; k++) sum += yWeight[y * taps + k] * rows[yIndex[y * taps + k] * outWidth + x];
                output[y * outWidth + x] = (float)(clampToBytes ? Math.Clamp(sum, 0, 255) : sum);
            }
    }

    /// <summary>Per output position: the source indices (clamped) and weights of the interpolation taps.</summary>
    private static (int[] Index, double[] Weight, int Taps) Taps(int size, int outSize, ImageResampling resampling)
    {
        int taps = resampling == ImageResampling.Bicubic ? 4 : 2;
        var index = new int[outSize * taps];
        var weight = new double[outSize * taps];
        double scale = (double)size / outSize;
        for (int o = 0; o < outSize; o++)
        {
            double source = (o + 0.5) * scale - 0.5;
            int floor = (int)Math.Floor(source);
            double t = source - floor;
            for (int k = 0; k < taps; k++)
            {
                int offset = resampling == ImageResampling.Bicubic ? k - 1 : k;
                index[o * taps + k] = Math.Clamp(floor + offset, 0, size - 1);
                weight[o * taps + k] = resampling == ImageResampling.Bicubic ? Cubic(t - offset) : (k == 0 ? 1 - t : t);
            }
        }
        return (index, weight, taps);
    }

    /// <summary>Keys' cubic convolution kernel with a = −0.75.</summary>
    private static double Cubic(double x)
    {
        x = Math.Abs(x);
        return x <= 1 ? ((CubicA + 2) * x - (CubicA + 3)) * x * x + 1
             : x < 2 ? ((CubicA * x - 5 * CubicA) * x + 8 * CubicA) * x - 4 * CubicA
             : 0;
    }
}
