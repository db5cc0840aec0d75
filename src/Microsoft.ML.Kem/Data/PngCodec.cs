using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Microsoft.ML.Kem.Data;

/// <summary>
/// PNG reader and writer (W3C PNG spec, 2nd ed. = PNG 1.2), built on <see cref="ZLibStream"/> only.
/// Reads colour types 0, 2, 3, 4, 6 at every bit depth the spec allows, all five filter types, non-interlaced;
/// indexed images come back as palette indices, which is what label masks need. Writes gray 8/16-bit, RGB 8-bit and
/// 8-bit indexed images, atomically (<c>path.tmp</c>, then rename).
/// Errors name the file: <see cref="InvalidDataException"/> for corrupt or truncated data,
/// <see cref="NotSupportedException"/> for Adam7 interlacing.
/// </summary>
public static class PngCodec
{
    private static ReadOnlySpan<byte> Signature => [137, 80, 78, 71, 13, 10, 26, 10];
    private const string InMemory = "<in-memory PNG>";
    private static readonly byte[] VocPalette = BuildVocPalette();

    /// <summary>
    /// The PASCAL VOC colour map (256 entries, interleaved RGB): index 0 black, 1 dark red, 2 dark green, …, 255 cream.
    /// Used by <see cref="WriteIndexed"/> when no palette is given.
    /// </summary>
    public static ReadOnlySpan<byte> DefaultPalette => VocPalette;

    // ---------------------------------------------------------------- reading

    /// <summary>Reads and decodes the PNG file at <paramref name="path"/>.</summary>
    public static PngImage Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Decode(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads an index mask (gray with bit depth ≤ 8, or indexed): one raw value per pixel, palette not applied.</summary>
    public static PixelMap<byte> ReadLabelIndices(string path)
    {
        PngImage image = Read(path);
        if (image.ColorType is not (PngColorType.Gray or PngColorType.Indexed) || image.BitDepth > 8)
            throw new InvalidDataException(
                $"'{path}': a label mask must be an 8-bit (or smaller) gray or indexed PNG, but this one is {image.ColorType} {image.BitDepth}-bit.");
        var values = new byte[image.Samples.Length];
        for (int i = 0; i < values.Length; i++)
            values[i] = (byte)image.Samples[i];
        return new PixelMap<byte>(image.Width, image.Height, values);
    }

    /// <summary>Reads a 16-bit gray PNG with full precision.</summary>
    public static PixelMap<ushort> ReadGray16(string path)
    {
        PngImage image = Read(path);
        if (image.ColorType != PngColorType.Gray || image.BitDepth != 16)
            throw new InvalidDataException($"'{path}': expected a 16-bit gray PNG, but this one is {image.ColorType} {image.BitDepth}-bit.");
        return new PixelMap<ushort>(image.Width, image.Height, image.Samples);
    }

    /// <summary>Decodes PNG bytes; <paramref name="source"/> names the data in error messages (usually the file path).</summary>
    public static PngImage Decode(ReadOnlySpan<byte> png, string source = InMemory)
    {
        if (png.Length < Signature.Length || !png[..Signature.Length].SequenceEqual(Signature))
            throw Corrupt(source, "the PNG signature is missing (not a PNG file)");

        Header? header = null;
        byte[]? palette = null;
        var compressed = new MemoryStream();
        int offset = Signature.Length;
        bool ended = false;
        while (!ended)
        {
            if (offset + 8 > png.Length)
                throw Corrupt(source, $"truncated: the file ends at byte {png.Length} before the IEND chunk");
            long length = BinaryPrimitives.ReadUInt32BigEndian(png[offset..]);
            ReadOnlySpan<byte> type = png.Slice(offset + 4, 4);
            string name = Encoding.ASCII.GetString(type);
            if (offset + 12L + length > png.Length)
                throw Corrupt(source, $"truncated: chunk '{name}' at byte {offset} declares {length} data bytes but the file ends at byte {png.Length}");
            ReadOnlySpan<byte> data = png.Slice(offset + 8, (int)length);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(png[(offset + 8 + (int)length)..]);
            uint computed = Crc32.Compute(png.Slice(offset + 4, 4 + (int)length));
            if (stored != computed)
                throw Corrupt(source, $"CRC mismatch in chunk '{name}' at byte {offset} (stored 0x{stored:X8}, computed 0x{computed:X8})");
            if (header is null && name != "IHDR")
                throw Corrupt(source, $"the first chunk is '{name}', expected IHDR");

            switch (name)
            {
                case "IHDR":
                    if (header is not null)
                        throw Corrupt(source, "a second IHDR chunk");
                    header = ParseHeader(data, source);
                    break;
                case "PLTE":
                    if (data.Length == 0 || data.Length % 3 != 0 || data.Length > 3 * 256)
                        throw Corrupt(source, $"PLTE chunk of {data.Length} bytes (must be 3 × 1..256)");
                    palette = data.ToArray();
                    break;
                case "IDAT":
                    compressed.Write(data);
                    break;
                case "IEND":
                    ended = true;
                    break;
                default:
                    // Bit 5 of the first type byte clear = critical chunk (PNG spec §5.4); a decoder must not skip one it does not know.
                    if ((type[0] & 0x20) == 0)
                        throw Corrupt(source, $"unknown critical chunk '{name}'");
                    break;
            }
            offset += 12 + (int)length;
        }

        Header h = header!.Value;
        if (h.ColorType == PngColorType.Indexed && palette is null)
            throw Corrupt(source, "indexed colour image without a PLTE chunk");
        if (compressed.Length == 0)
            throw Corrupt(source, "no IDAT chunk (no image data)");

        byte[] filtered = Inflate(compressed, h, source);
        Unfilter(filtered, h, source);
        return new PngImage(h.Width, h.Height, h.ColorType, h.BitDepth, Unpack(filtered, h), palette);
    }

    private readonly record struct Header(int Width, int Height, PngColorType ColorType, int BitDepth)
    {
        public int Channels => PngImage.ChannelsOf(ColorType);
        public int BitsPerPixel => Channels * BitDepth;
        /// <summary>Bytes of one scanline, without its filter-type byte.</summary>
        public long RowBytes => ((long)Width * BitsPerPixel + 7) / 8;
        /// <summary>Distance to the corresponding byte of the previous pixel (PNG spec §9.2 "bpp"), at least 1.</summary>
        public int FilterStride => Math.Max(1, BitsPerPixel / 8);
    }

    private static Header ParseHeader(ReadOnlySpan<byte> data, string source)
    {
        if (data.Length != 13)
            throw Corrupt(source, $"IHDR chunk of {data.Length} bytes (must be 13)");
        uint width = BinaryPrimitives.ReadUInt32BigEndian(data);
        uint height = BinaryPrimitives.ReadUInt32BigEndian(data[4..]);
        int bitDepth = data[8];
        var colorType = (PngColorType)data[9];
        if (width == 0 || height == 0 || width > int.MaxValue || height > int.MaxValue)
            throw Corrupt(source, $"invalid image size {width}×{height}");
        bool validDepth = colorType switch
        {
            PngColorType.Gray => bitDepth is 1 or 2 or 4 or 8 or 16,
            PngColorType.Indexed => bitDepth is 1 or 2 or 4 or 8,
            PngColorType.Rgb or PngColorType.GrayAlpha or PngColorType.Rgba => bitDepth is 8 or 16,
            _ => throw Corrupt(source, $"unknown colour type {data[9]}"),
        };
        if (!validDepth)
            throw Corrupt(source, $"bit depth {bitDepth} is not allowed for colour type {colorType}");
        if (data[10] != 0 || data[11] != 0)
            throw Corrupt(source, $"unknown compression method {data[10]} or filter method {data[11]}");
        if (data[12] == 1)
            throw new NotSupportedException($"'{source}': Adam7-interlaced PNG is not supported; re-save the image without interlacing.");
        if (data[12] != 0)
            throw Corrupt(source, $"unknown interlace method {data[12]}");

        var header = new Header((int)width, (int)height, colorType, bitDepth);
        if ((header.RowBytes + 1) * height > Array.MaxLength || (long)width * height * header.Channels > Array.MaxLength)
            throw Corrupt(source, $"image of {width}×{height} is too large to decode");
        return header;
    }

    private static byte[] Inflate(MemoryStream compressed, Header h, string source)
    {
        var filtered = new byte[(h.RowBytes + 1) * h.Height];
        compressed.Position = 0;
        try
        {
            using var inflater = new ZLibStream(compressed, CompressionMode.Decompress);
            inflater.ReadExactly(filtered);
        }
        catch (EndOfStreamException)
        {
            throw Corrupt(source, $"truncated: the image data holds fewer than the {filtered.Length} bytes a {h.Width}×{h.Height} {h.ColorType} {h.BitDepth}-bit image needs");
        }
        catch (InvalidDataException e)
        {
            throw Corrupt(source, $"the image data is not a valid zlib stream ({e.Message})", e);
        }
        return filtered;
    }

    /// <summary>Reverses the per-scanline filters in place (PNG spec §9.2); byte 0 of each stored row is its filter type.</summary>
    private static void Unfilter(byte[] data, Header h, string source)
    {
        int rowBytes = (int)h.RowBytes, stride = h.FilterStride;
        Span<byte> zeros = new byte[rowBytes];
        ReadOnlySpan<byte> prior = zeros;
        for (int y = 0; y < h.Height; y++)
        {
            int start = y * (rowBytes + 1);
            Span<byte> row = data.AsSpan(start + 1, rowBytes);
            switch (data[start])
            {
                case 0:
                    break;
                case 1: // Sub
                    for (int i = stride; i < rowBytes; i++)
                        row[i] += row[i - stride];
                    break;
                case 2: // Up
                    for (int i = 0; i < rowBytes; i++)
                        row[i] += prior[i];
                    break;
                case 3: // Average
                    for (int i = 0; i < rowBytes; i++)
                        row[i] += (byte)(((i >= stride ? row[i - stride] : 0) + prior[i]) >> 1);
                    break;
                case 4: // Paeth
                    for (int i = 0; i < rowBytes; i++)
                        row[i] += Paeth(i >= stride ? row[i - stride] : (byte)0, prior[i], i >= stride ? prior[i - stride] : (byte)0);
                    break;
                default:
                    throw Corrupt(source, $"unknown filter type {data[start]} on row {y}");
            }
            prior = row;
        }
    }

    private static byte Paeth(byte left, byte up, byte upLeft)
    {
        int estimate = left + up - upLeft;
        int toLeft = Math.Abs(estimate - left), toUp = Math.Abs(estimate - up), toUpLeft = Math.Abs(estimate - upLeft);
        if (toLeft <= toUp && toLeft <= toUpLeft)
            return left;
        return toUp <= toUpLeft ? up : upLeft;
    }

    /// <summary>Unfiltered scanlines → H×W×Channels sample values (big-endian 16-bit; sub-byte samples packed from the high bit).</summary>
    private static ushort[] Unpack(byte[] data, Header h)
    {
        int rowBytes = (int)h.RowBytes, perRow = h.Width * h.Channels, depth = h.BitDepth;
        var samples = new ushort[perRow * h.Height];
        for (int y = 0; y < h.Height; y++)
        {
            ReadOnlySpan<byte> row = data.AsSpan(y * (rowBytes + 1) + 1, rowBytes);
            Span<ushort> target = samples.AsSpan(y * perRow, perRow);
            if (depth == 8)
                for (int i = 0; i < perRow; i++)
                    target[i] = row[i];
            else if (depth == 16)
                for (int i = 0; i < perRow; i++)
                    target[i] = BinaryPrimitives.ReadUInt16BigEndian(row[(2 * i)..]);
            else
            {
                int mask = (1 << depth) - 1;
                for (int i = 0; i < perRow; i++)
                {
                    int bit = i * depth;
                    target[i] = (ushort)((row[bit >> 3] >> (8 - depth - (bit & 7))) & mask);
                }
            }
        }
        return samples;
    }

    // ---------------------------------------------------------------- writing

    /// <summary>Encodes 8-bit gray values (H×W) as a PNG.</summary>
    public static byte[] EncodeGray8(ReadOnlySpan<byte> gray, int width, int height)
    {
        CheckLength(gray.Length, width, height, 1, nameof(gray));
        return Encode(width, height, PngColorType.Gray, 8, gray, []);
    }

    /// <summary>Encodes 16-bit gray values (H×W) as a PNG with full precision.</summary>
    public static byte[] EncodeGray16(ReadOnlySpan<ushort> gray, int width, int height)
    {
        CheckLength(gray.Length, width, height, 1, nameof(gray));
        var bigEndian = new byte[2 * gray.Length];
        for (int i = 0; i < gray.Length; i++)
            BinaryPrimitives.WriteUInt16BigEndian(bigEndian.AsSpan(2 * i), gray[i]);
        return Encode(width, height, PngColorType.Gray, 16, bigEndian, []);
    }

    /// <summary>Encodes interleaved 8-bit RGB (H×W×3) as a PNG.</summary>
    public static byte[] EncodeRgb(ReadOnlySpan<byte> rgbInterleaved, int width, int height)
    {
        CheckLength(rgbInterleaved.Length, width, height, 3, nameof(rgbInterleaved));
        return Encode(width, height, PngColorType.Rgb, 8, rgbInterleaved, []);
    }

    /// <summary>
    /// Encodes palette indices (H×W) as an 8-bit indexed PNG with <paramref name="paletteRgb"/> (3 bytes per entry, 1..256 entries);
    /// every index must name an entry of the palette.
    /// </summary>
    public static byte[] EncodeIndexed(ReadOnlySpan<byte> indices, int width, int height, ReadOnlySpan<byte> paletteRgb)
    {
        CheckLength(indices.Length, width, height, 1, nameof(indices));
        if (paletteRgb.Length == 0 || paletteRgb.Length % 3 != 0 || paletteRgb.Length > 3 * 256)
            throw new ArgumentException($"The palette must hold 1..256 RGB entries (3 bytes each), not {paletteRgb.Length} bytes.", nameof(paletteRgb));
        int entries = paletteRgb.Length / 3;
        for (int i = 0; i < indices.Length; i++)
            if (indices[i] >= entries)
                throw new ArgumentException($"Index {indices[i]} at pixel {i} is outside the {entries}-entry palette; pass a larger palette.", nameof(indices));
        return Encode(width, height, PngColorType.Indexed, 8, indices, paletteRgb);
    }

    /// <summary>Writes 8-bit gray values (H×W) to <paramref name="path"/> atomically.</summary>
    public static void WriteGray8(string path, byte[] gray, int width, int height) =>
        AtomicFile.WriteAllBytes(path, EncodeGray8(gray, width, height));

    /// <summary>Writes 16-bit gray values (H×W) to <paramref name="path"/> atomically.</summary>
    public static void WriteGray16(string path, ushort[] gray, int width, int height) =>
        AtomicFile.WriteAllBytes(path, EncodeGray16(gray, width, height));

    /// <summary>Writes interleaved 8-bit RGB (H×W×3) to <paramref name="path"/> atomically.</summary>
    public static void WriteRgb(string path, byte[] rgbInterleaved, int width, int height) =>
        AtomicFile.WriteAllBytes(path, EncodeRgb(rgbInterleaved, width, height));

    /// <summary>Writes palette indices (H×W) as an indexed PNG atomically; the palette defaults to <see cref="DefaultPalette"/>.</summary>
    public static void WriteIndexed(string path, byte[] indices, int width, int height, byte[]? palette = null) =>
        AtomicFile.WriteAllBytes(path, EncodeIndexed(indices, width, height, palette ?? VocPalette));

    private static void CheckLength(int length, int width, int height, int channels, string name)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentOutOfRangeException(width <= 0 ? nameof(width) : nameof(height), $"Image size must be positive, got {width}×{height}.");
        if (length != (long)width * height * channels)
            throw new ArgumentException($"Expected {width}×{height}×{channels} = {(long)width * height * channels} values for a {width}×{height} image, got {length}.", name);
    }

    /// <summary>Builds the file: signature, IHDR, PLTE (indexed only), one IDAT, IEND.</summary>
    private static byte[] Encode(int width, int height, PngColorType colorType, int bitDepth, ReadOnlySpan<byte> rows, ReadOnlySpan<byte> palette)
    {
        var header = new Header(width, height, colorType, bitDepth);
        var output = new MemoryStream();
        output.Write(Signature);

        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr[4..], (uint)height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = (byte)colorType;
        WriteChunk(output, "IHDR", ihdr);
        if (colorType == PngColorType.Indexed)
            WriteChunk(output, "PLTE", palette);

        var compressed = new MemoryStream();
        using (var deflater = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            FilterRows(deflater, rows, header);
        WriteChunk(output, "IDAT", compressed.GetBuffer().AsSpan(0, (int)compressed.Length));
        WriteChunk(output, "IEND", []);
        return output.ToArray();
    }

    /// <summary>
    /// Filters each scanline with the type whose output has the smallest sum of absolute signed bytes
    /// (the heuristic of PNG spec §12.8) and writes filter byte + row.
    /// </summary>
    private static void FilterRows(Stream target, ReadOnlySpan<byte> rows, Header h)
    {
        int rowBytes = (int)h.RowBytes, stride = h.FilterStride;
        var zeros = new byte[rowBytes];
        var candidates = new byte[5][];
        for (int f = 0; f < 5; f++)
            candidates[f] = new byte[rowBytes + 1];
        for (int y = 0; y < h.Height; y++)
        {
            ReadOnlySpan<byte> row = rows.Slice(y * rowBytes, rowBytes);
            ReadOnlySpan<byte> prior = y == 0 ? zeros : rows.Slice((y - 1) * rowBytes, rowBytes);
            int best = 0;
            long bestCost = long.MaxValue;
            for (int f = 0; f < 5; f++)
            {
                byte[] output = candidates[f];
                output[0] = (byte)f;
                long cost = 0;
                for (int i = 0; i < rowBytes; i++)
                {
                    byte left = i >= stride ? row[i - stride] : (byte)0;
                    byte upLeft = i >= stride ? prior[i - stride] : (byte)0;
                    byte predictor = f switch
                    {
                        0 => 0,
                        1 => left,
                        2 => prior[i],
                        3 => (byte)((left + prior[i]) >> 1),
                        _ => Paeth(left, prior[i], upLeft),
                    };
                    byte value = (byte)(row[i] - predictor);
                    output[i + 1] = value;
                    cost += Math.Abs((int)(sbyte)value);
                }
                if (cost < bestCost)
                {
                    bestCost = cost;
                    best = f;
                }
            }
            target.Write(candidates[best]);
        }
    }

    private static void WriteChunk(Stream output, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(word, (uint)data.Length);
        output.Write(word);
        Span<byte> typeBytes = stackalloc byte[4];
        Encoding.ASCII.GetBytes(type, typeBytes);
        output.Write(typeBytes);
        output.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32.Finish(Crc32.Append(Crc32.Append(Crc32.Start, typeBytes), data)));
        output.Write(word);
    }

    /// <summary>PASCAL VOC colour map: the bits of the index are spread over the high bits of R, G and B.</summary>
    private static byte[] BuildVocPalette()
    {
        var palette = new byte[3 * 256];
        for (int index = 0; index < 256; index++)
        {
            int r = 0, g = 0, b = 0, c = index;
            for (int shift = 7; shift >= 0; shift--)
            {
                r |= (c & 1) << shift;
                g |= ((c >> 1) & 1) << shift;
                b |= ((c >> 2) & 1) << shift;
                c >>= 3;
            }
            palette[3 * index] = (byte)r;
            palette[3 * index + 1] = (byte)g;
            palette[3 * index + 2] = (byte)b;
        }
        return palette;
    }

    private static InvalidDataException Corrupt(string source, string problem, Exception? inner = null) =>
        new($"'{source}' is not a valid PNG: {problem}.", inner);
}
