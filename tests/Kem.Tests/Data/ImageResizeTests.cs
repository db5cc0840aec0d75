using Microsoft.ML.Kem.Data;

namespace Kem.Tests.Data;

[TestClass]
public sealed class ImageResizeTests
{
    private static byte[] Checkerboard(int size)
    {
        var rgb = new byte[3 * size * size];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                for (int c = 0; c < 3; c++)
                    rgb[3 * (y * size + x) + c] = (byte)((x + y) % 2 == 0 ? 0 : 200);
        return rgb;
    }

    [TestMethod]
    [DataRow(ImageResampling.Bilinear)]
    [DataRow(ImageResampling.Bicubic)]
    public void Halving_a_checkerboard_averages_instead_of_picking_pixels(ImageResampling resampling)
    {
        float[] planes = ImageResize.RgbToPlanes(Checkerboard(16), 16, 16, 8, 8, resampling);
        Assert.HasCount(3 * 64, planes);
        for (int c = 0; c < 3; c++)
            for (int y = 1; y < 7; y++)
                for (int x = 1; x < 7; x++)
                    Assert.AreEqual(100f, planes[c * 64 + y * 8 + x], 1e-3f, $"({c},{y},{x}) is the mean of 0 and 200, not a sampled 0 or 200");
    }

    [TestMethod]
    public void Same_size_only_deinterleaves_and_constant_images_stay_constant_when_upscaled()
    {
        byte[] rgb = [10, 20, 30, 40, 50, 60];
        CollectionAssert.AreEqual(new[] { 10f, 40, 20, 50, 30, 60 }, ImageResize.RgbToPlanes(rgb, 1, 2, 1, 2));
        byte[] flat = Enumerable.Repeat((byte)77, 3 * 5 * 7).ToArray();
        foreach (var r in new[] { ImageResampling.Bicubic, ImageResampling.Bilinear })
            Assert.IsTrue(ImageResize.RgbToPlanes(flat, 5, 7, 13, 9, r).All(v => Math.Abs(v - 77f) < 1e-3f), r.ToString());
    }

    [TestMethod]
    public void Bilinear_doubling_interpolates_a_ramp_on_pixel_centres_and_bicubic_stays_in_range()
    {
        // One row 0, 100: output centres map to source −0.25, 0.25, 0.75, 1.25 → clamped 0, 25, 75, 100.
        byte[] ramp = [0, 0, 0, 100, 100, 100];
        float[] doubled = ImageResize.RgbToPlanes(ramp, 1, 2, 1, 4, ImageResampling.Bilinear);
        CollectionAssert.AreEqual(new[] { 0f, 25, 75, 100 }, doubled[..4]);
        byte[] edge = [0, 0, 0, 255, 255, 255, 0, 0, 0];
        float[] cubic = ImageResize.RgbToPlanes(edge, 1, 3, 1, 12, ImageResampling.Bicubic);
        Assert.IsTrue(cubic.All(v => v >= 0 && v <= 255), "overshoot is clamped to 0..255");
    }
}
