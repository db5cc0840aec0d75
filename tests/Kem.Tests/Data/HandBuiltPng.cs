using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Kem.Tests.Data;

/// <summary>
/// Builds PNG files chunk by chunk, independently of PngCodec's encoder (own bitwise CRC, own filters),
/// so that the decoder is checked against a second implementation of the spec.
/// </summary>
internal static class HandBuiltPng
{
    /// <summary>
    /// A PNG whose row y is stored with filter type <c>filters[y % filters.Length]</c>.
    /// <paramref name="packedRows"/> holds the unfiltered scanlines (rowBytes each, sub-byte samples already packed).
    /// </summary>
    public static byte[] Build(int width, int height, int colorType, int bitDepth, byte[] packedRows, int[] filters,
        byte[]? palette = null, int interlace = 0)
    {
        int channels = colorType switch { 0 or 3 => 1, 4 => 2, 2 => 3, _ => 4 };
        int bitsPerPixel = channels * bitDepth;
        int rowBytes = (width * bitsPerPixel + 7) / 8;
        int stride = Math.Max(1, bitsPerPixel / 8);

        var filtered = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            int filter = filters[y % filters.Length];
            filtered.WriteByte((byte)filter);
            for (int i = 0; i < rowBytes; i++)
            {
                int x = packedRows[y * rowBytes + i];
                int a = i >= stride ? packedRows[y * rowBytes + i - stride] : 0;
                int b = y > 0 ? packedRows[(y - 1) * rowBytes + i] : 0;
                int c = y > 0 && i >= stride ? packedRows[(y - 1) * rowBytes + i - stride] : 0;
                int predictor = filter switch
                {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => (a + b) / 2,
                    _ => PaethPredictor(a, b, c),
                };
                filtered.WriteByte((byte)(x - predictor));
            }
        }
        var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
            z.Write(filtered.ToArray());

        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = (byte)colorType;
        ihdr[12] = (byte)interlace;

        var png = new MemoryStream();
        png.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "tEXt", Encoding.ASCII.GetBytes("Comment\0an ancillary chunk the decoder must skip"));
        if (palette is not null)
            Chunk(png, "PLTE", palette);
        byte[] data = compressed.ToArray();
        int half = data.Length / 2; // two IDAT chunks: the decoder must concatenate them
        Chunk(png, "IDAT", data[..half]);
        Chunk(png, "IDAT", data[half..]);
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    /// <summary>Packs sample values of <paramref name="bitDepth"/> ≤ 8 bits into scanlines, high bits first.</summary>
    public static byte[] Pack(int[] samples, int width, int height, int bitDepth)
    {
        int rowBytes = (width * bitDepth + 7) / 8;
        var rows = new byte[rowBytes * height];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int bit = x * bitDepth;
                rows[y * rowBytes + bit / 8] |= (byte)(samples[y * width + x] << (8 - bitDepth - bit % 8));
            }
        return rows;
    }

    private static int PaethPredictor(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        byte[] typeAndData = [.. Encoding.ASCII.GetBytes(type), .. data];
        var word = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        png.Write(word);
        png.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(word, BitwiseCrc32(typeAndData));
        png.Write(word);
    }

    /// <summary>CRC-32 computed bit by bit (no table), polynomial 0xEDB88320.</summary>
    public static uint BitwiseCrc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
                crc = (crc >> 1) ^ (0xEDB88320u & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }
}
