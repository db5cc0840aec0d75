namespace Microsoft.ML.Kem.Data;

/// <summary>PNG colour types (PNG spec §11.2.2, IHDR).</summary>
public enum PngColorType : byte
{
    /// <summary>One gray sample per pixel (bit depth 1, 2, 4, 8 or 16).</summary>
    Gray = 0,
    /// <summary>Red, green, blue samples (bit depth 8 or 16).</summary>
    Rgb = 2,
    /// <summary>One palette index per pixel (bit depth 1, 2, 4 or 8); label masks use this.</summary>
    Indexed = 3,
    /// <summary>Gray and alpha samples (bit depth 8 or 16).</summary>
    GrayAlpha = 4,
    /// <summary>Red, green, blue and alpha samples (bit depth 8 or 16).</summary>
    Rgba = 6,
}

/// <summary>
/// A decoded PNG: raw samples, row-major and channel-interleaved (H×W×Channels), exactly as stored.
/// For <see cref="PngColorType.Indexed"/> images the single channel holds palette indices, not colours.
/// </summary>
/// <param name="Width">Pixels per row.</param>
/// <param name="Height">Rows.</param>
/// <param name="ColorType">Colour type from IHDR.</param>
/// <param name="BitDepth">Bits per sample (per index for indexed images).</param>
/// <param name="Samples">H×W×Channels raw sample values (0 .. 2^BitDepth − 1).</param>
/// <param name="Palette">PLTE entries as interleaved RGB bytes (3 per entry); null when the file has none.</param>
public sealed record PngImage(int Width, int Height, PngColorType ColorType, int BitDepth, ushort[] Samples, byte[]? Palette = null)
{
    /// <summary>Samples per pixel: 1 gray/indexed, 2 gray+alpha, 3 RGB, 4 RGBA.</summary>
    public int Channels => ChannelsOf(ColorType);

    /// <summary>Samples per pixel of a colour type.</summary>
    public static int ChannelsOf(PngColorType colorType) => colorType switch
    {
        PngColorType.Gray or PngColorType.Indexed => 1,
        PngColorType.GrayAlpha => 2,
        PngColorType.Rgb => 3,
        PngColorType.Rgba => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(colorType), colorType, "Not a PNG colour type."),
    };

    /// <summary>Raw samples as float planes, Channels×H×W (CHW), each value multiplied by <paramref name="scale"/>.</summary>
    public float[] ToPlanes(float scale = 1f)
    {
        int pixels = Width * Height, channels = Channels;
        var planes = new float[channels * pixels];
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < channels; c++)
                planes[c * pixels + i] = Samples[i * channels + c] * scale;
        return planes;
    }

    /// <summary>
    /// Colours as 8-bit RGB, interleaved H×W×3: palette indices are looked up, gray is replicated, alpha is dropped,
    /// 16-bit samples keep their high byte and 1/2/4-bit gray is stretched to 0..255.
    /// </summary>
    public byte[] ToRgb8()
    {
        int pixels = Width * Height, channels = Channels;
        var rgb = new byte[pixels * 3];
        if (ColorType == PngColorType.Indexed)
        {
            byte[] palette = Palette ?? throw new InvalidDataException("Indexed PNG image has no palette.");
            for (int i = 0; i < pixels; i++)
            {
                int entry = Samples[i];
                if (3 * entry + 2 >= palette.Length)
                    throw new InvalidDataException($"Palette index {entry} at pixel {i} is outside the {palette.Length / 3}-entry palette.");
                rgb[3 * i] = palette[3 * entry];
                rgb[3 * i + 1] = palette[3 * entry + 1];
                rgb[3 * i + 2] = palette[3 * entry + 2];
            }
            return rgb;
        }
        int maximum = (1 << BitDepth) - 1;
        bool colour = ColorType is PngColorType.Rgb or PngColorType.Rgba;
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < 3; c++)
            {
                int sample = Samples[i * channels + (colour ? c : 0)];
                rgb[3 * i + c] = (byte)((sample * 255 + maximum / 2) / maximum);
            }
        return rgb;
    }
}

/// <summary>One value per pixel, row-major H×W (a label mask or a 16-bit gray plane).</summary>
/// <param name="Width">Pixels per row.</param>
/// <param name="Height">Rows.</param>
/// <param name="Values">H×W values.</param>
public sealed record PixelMap<T>(int Width, int Height, T[] Values);
