using Microsoft.ML.Kem.Data;

namespace Kem.Tests.Data;

[TestClass]
public sealed class PngCodecTests
{
    /// <summary>Smooth gradients plus noise, so the encoder's per-row choice visits several filter types.</summary>
    private static byte[] TestPattern(int count, int seed)
    {
        var values = new byte[count];
        uint state = (uint)seed * 2654435761u + 1;
        for (int i = 0; i < count; i++)
        {
            state = state * 1664525u + 1013904223u;
            values[i] = (byte)(i % 97 + (i / 31) + ((state >> 24) & 7));
        }
        return values;
    }

    [TestMethod]
    public void Rgb_round_trip_returns_the_same_bytes()
    {
        const int width = 13, height = 7;
        byte[] rgb = TestPattern(width * height * 3, 1);
        PngImage image = PngCodec.Decode(PngCodec.EncodeRgb(rgb, width, height));
        Assert.AreEqual(width, image.Width);
        Assert.AreEqual(height, image.Height);
        Assert.AreEqual(PngColorType.Rgb, image.ColorType);
        Assert.AreEqual(3, image.Channels);
        Assert.AreEqual(8, image.BitDepth);
        CollectionAssert.AreEqual(rgb, image.ToRgb8());
    }

    [TestMethod]
    public void Gray8_round_trip_returns_the_same_bytes()
    {
        const int width = 9, height = 11;
        byte[] gray = TestPattern(width * height, 2);
        PngImage image = PngCodec.Decode(PngCodec.EncodeGray8(gray, width, height));
        Assert.AreEqual(PngColorType.Gray, image.ColorType);
        CollectionAssert.AreEqual(gray.Select(v => (ushort)v).ToArray(), image.Samples);
    }

    [TestMethod]
    public void Gray16_round_trip_keeps_full_precision()
    {
        using var folder = new TempFolder();
        const int width = 4, height = 3;
        ushort[] values = [0, 1, 255, 256, 257, 1000, 12345, 32767, 32768, 50001, 65534, 65535];
        string path = folder.File("depth.png");
        PngCodec.WriteGray16(path, values, width, height);

        PixelMap<ushort> read = PngCodec.ReadGray16(path);
        Assert.AreEqual(width, read.Width);
        Assert.AreEqual(height, read.Height);
        CollectionAssert.AreEqual(values, read.Values);
    }

    [TestMethod]
    public void Indexed_png_decodes_to_indices_not_colours()
    {
        using var folder = new TempFolder();
        const int width = 5, height = 4;
        byte[] indices = Enumerable.Range(0, width * height).Select(i => (byte)(i % 3)).ToArray();
        byte[] palette = [200, 10, 10, 10, 200, 10, 10, 10, 200];
        string path = folder.File("mask.png");
        PngCodec.WriteIndexed(path, indices, width, height, palette);

        PixelMap<byte> mask = PngCodec.ReadLabelIndices(path);
        CollectionAssert.AreEqual(indices, mask.Values);
        PngImage image = PngCodec.Read(path);
        Assert.AreEqual(PngColorType.Indexed, image.ColorType);
        CollectionAssert.AreEqual(palette, image.Palette);
        CollectionAssert.AreEqual(new byte[] { 200, 10, 10, 10, 200, 10, 10, 10, 200 }, image.ToRgb8()[..9]);
    }

    [TestMethod]
    public void Indexed_write_without_palette_uses_the_voc_colour_map()
    {
        using var folder = new TempFolder();
        string path = folder.File("parts.png");
        PngCodec.WriteIndexed(path, [0, 1, 2, 255], 2, 2);
        PngImage image = PngCodec.Read(path);
        CollectionAssert.AreEqual(new ushort[] { 0, 1, 2, 255 }, image.Samples);
        // VOC colour map: 0 black, 1 (128,0,0), 2 (0,128,0).
        CollectionAssert.AreEqual(new byte[] { 0, 0, 0, 128, 0, 0, 0, 128, 0 }, image.ToRgb8()[..9]);
    }

    [TestMethod]
    public void Hand_built_png_with_every_filter_type_decodes_exactly()
    {
        const int width = 6, height = 10;
        byte[] rgba = TestPattern(width * height * 4, 3);
        byte[] png = HandBuiltPng.Build(width, height, colorType: 6, bitDepth: 8, rgba, filters: [0, 1, 2, 3, 4]);
        PngImage image = PngCodec.Decode(png);
        Assert.AreEqual(PngColorType.Rgba, image.ColorType);
        CollectionAssert.AreEqual(rgba.Select(v => (ushort)v).ToArray(), image.Samples);
    }

    [TestMethod]
    public void Hand_built_16_bit_rgb_with_every_filter_type_decodes_exactly()
    {
        const int width = 3, height = 5;
        byte[] bigEndian = TestPattern(width * height * 6, 4);
        byte[] png = HandBuiltPng.Build(width, height, colorType: 2, bitDepth: 16, bigEndian, filters: [4, 3, 2, 1, 0]);
        PngImage image = PngCodec.Decode(png);
        ushort[] expected = Enumerable.Range(0, width * height * 3).Select(i => (ushort)(bigEndian[2 * i] << 8 | bigEndian[2 * i + 1])).ToArray();
        CollectionAssert.AreEqual(expected, image.Samples);
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(4)]
    public void Sub_byte_palette_png_decodes_to_raw_indices(int bitDepth)
    {
        const int width = 7, height = 5; // 7 pixels: rows end in a partly used byte
        int levels = 1 << bitDepth;
        int[] indices = Enumerable.Range(0, width * height).Select(i => (i * 5 + i / width) % levels).ToArray();
        byte[] palette = Enumerable.Range(0, 3 * levels).Select(i => (byte)(i * 7)).ToArray();
        byte[] png = HandBuiltPng.Build(width, height, colorType: 3, bitDepth, HandBuiltPng.Pack(indices, width, height, bitDepth),
            filters: [0, 1, 2, 3, 4], palette);

        PngImage image = PngCodec.Decode(png);
        Assert.AreEqual(bitDepth, image.BitDepth);
        CollectionAssert.AreEqual(indices.Select(v => (ushort)v).ToArray(), image.Samples);
    }

    [TestMethod]
    public void Gray_alpha_png_keeps_both_channels()
    {
        byte[] samples = [10, 255, 20, 128, 30, 0, 40, 1];
        PngImage image = PngCodec.Decode(HandBuiltPng.Build(2, 2, colorType: 4, bitDepth: 8, samples, filters: [1]));
        Assert.AreEqual(2, image.Channels);
        CollectionAssert.AreEqual(samples.Select(v => (ushort)v).ToArray(), image.Samples);
        CollectionAssert.AreEqual(new float[] { 10, 20, 30, 40, 255, 128, 0, 1 }, image.ToPlanes());
    }

    [TestMethod]
    public void Encoded_file_ends_with_the_standard_iend_chunk()
    {
        byte[] png = PngCodec.EncodeGray8([1, 2, 3, 4], 2, 2);
        // IEND has no data, so its CRC is the well-known constant AE 42 60 82.
        CollectionAssert.AreEqual(new byte[] { 0, 0, 0, 0, (byte)'I', (byte)'E', (byte)'N', (byte)'D', 0xAE, 0x42, 0x60, 0x82 }, png[^12..]);
        Assert.AreEqual(0xCBF43926u, HandBuiltPng.BitwiseCrc32("123456789"u8.ToArray()), "reference CRC of the test helper");
    }

    [TestMethod]
    public void Corrupt_crc_error_names_the_file()
    {
        using var folder = new TempFolder();
        string path = folder.File("corrupt.png");
        byte[] png = PngCodec.EncodeRgb(TestPattern(4 * 4 * 3, 5), 4, 4);
        png[40] ^= 0x55; // inside the IDAT data
        File.WriteAllBytes(path, png);

        var error = Assert.ThrowsExactly<InvalidDataException>(() => PngCodec.Read(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("CRC", error.Message);
    }

    [TestMethod]
    public void Truncated_file_error_names_the_file()
    {
        using var folder = new TempFolder();
        string path = folder.File("truncated.png");
        byte[] png = PngCodec.EncodeRgb(TestPattern(8 * 8 * 3, 6), 8, 8);
        File.WriteAllBytes(path, png[..(png.Length - 20)]);

        var error = Assert.ThrowsExactly<InvalidDataException>(() => PngCodec.Read(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("truncated", error.Message);
    }

    [TestMethod]
    public void Not_a_png_error_names_the_file()
    {
        using var folder = new TempFolder();
        string path = folder.File("image.png");
        File.WriteAllBytes(path, "\xFF\xD8\xFF\xE0 a JPEG"u8.ToArray());
        var error = Assert.ThrowsExactly<InvalidDataException>(() => PngCodec.Read(path));
        Assert.Contains(path, error.Message);
    }

    [TestMethod]
    public void Interlaced_png_is_refused_naming_the_file()
    {
        using var folder = new TempFolder();
        string path = folder.File("adam7.png");
        File.WriteAllBytes(path, HandBuiltPng.Build(2, 2, colorType: 0, bitDepth: 8, [1, 2, 3, 4], filters: [0], interlace: 1));
        var error = Assert.ThrowsExactly<NotSupportedException>(() => PngCodec.Read(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("Adam7", error.Message);
    }

    [TestMethod]
    public void Label_reader_refuses_a_colour_image_naming_the_file()
    {
        using var folder = new TempFolder();
        string path = folder.File("rgb.png");
        PngCodec.WriteRgb(path, TestPattern(12, 7), 2, 2);
        var error = Assert.ThrowsExactly<InvalidDataException>(() => PngCodec.ReadLabelIndices(path));
        Assert.Contains(path, error.Message);
    }

    [TestMethod]
    public void Write_replaces_the_file_and_leaves_no_temporary()
    {
        using var folder = new TempFolder();
        string path = folder.File("a.png");
        PngCodec.WriteGray8(path, [1, 2, 3, 4], 2, 2);
        PngCodec.WriteGray8(path, [9, 8, 7, 6], 2, 2);
        CollectionAssert.AreEqual(new byte[] { 9, 8, 7, 6 }, PngCodec.ReadLabelIndices(path).Values);
        CollectionAssert.AreEqual(new[] { path }, Directory.GetFiles(folder.Path));
    }

    [TestMethod]
    public void Index_outside_the_palette_is_refused()
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() => PngCodec.EncodeIndexed([0, 3], 2, 1, [1, 2, 3, 4, 5, 6]));
        Assert.Contains("Index 3", error.Message);
    }
}
