using Microsoft.ML.Kem.Data;
using SkiaSharp;

namespace Kem.Trainers.DataViews;

/// <summary>
/// Image decoding for the dataset readers through SkiaSharp 2.88 (the decoder ML.NET's ImageAnalytics ships): JPEG, PNG, BMP,
/// WebP. Resizing is ours (<see cref="ImageResize"/>): ImageAnalytics' <c>ResizeImages</c> with <c>Fill</c> samples the nearest
/// pixel, which aliases; the readers interpolate bicubically (or bilinearly) as the public multi-task loaders do.
/// </summary>
internal static class ImageFile
{
    /// <summary>Width and height from the file header (no pixel decoding).</summary>
    public static (int Height, int Width) Size(string path)
    {
        using var codec = Open(path);
        return (codec.Info.Height, codec.Info.Width);
    }

    /// <summary>Decodes <paramref name="path"/> to interleaved 8-bit RGB (alpha dropped, gray expanded).</summary>
    public static (byte[] Rgb, int Height, int Width) ReadRgb(string path)
    {
        using var codec = Open(path);
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
            throw new InvalidDataException($"Image '{path}' could not be decoded ({result}): the file is truncated or corrupt.");
        byte[] rgba = bitmap.Bytes;
        int pixels = info.Width * info.Height;
        var rgb = new byte[3 * pixels];
        for (int i = 0; i < pixels; i++)
        {
            rgb[3 * i] = rgba[4 * i];
            rgb[3 * i + 1] = rgba[4 * i + 1];
            rgb[3 * i + 2] = rgba[4 * i + 2];
        }
        return (rgb, info.Height, info.Width);
    }

    /// <summary>Decodes and resizes to 3×<paramref name="height"/>×<paramref name="width"/> planes of 0..255 floats.</summary>
    public static float[] ReadPlanes(string path, int height, int width, ImageResampling resampling)
    {
        var (rgb, h, w) = ReadRgb(path);
        return ImageResize.RgbToPlanes(rgb, h, w, height, width, resampling);
    }

    private static SKCodec Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Image '{path}' does not exist.", path);
        var codec = SKCodec.Create(path, out var result);
        return codec ?? throw new InvalidDataException($"Image '{path}' is not a readable image ({result}).");
    }
}
