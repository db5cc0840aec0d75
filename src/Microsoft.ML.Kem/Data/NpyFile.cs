using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Kem.Data;

/// <summary>An n-dimensional array read from a .npy file, converted to float32, C (row-major) order.</summary>
/// <param name="Shape">Extent of each axis; empty for a 0-d scalar.</param>
/// <param name="Data">Product(Shape) values, last axis fastest.</param>
public sealed record NpyArray(int[] Shape, float[] Data)
{
    /// <summary>Number of values: the product of <see cref="Shape"/>.</summary>
    public long Count => Shape.Aggregate(1L, (product, extent) => product * extent);
}

/// <summary>
/// NumPy .npy reader and writer (format versions 1.0, 2.0 and 3.0; https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
/// Reads little-endian <c>&lt;f4 &lt;f8 |u1 |i1 &lt;u2 &lt;i2 &lt;i4 &lt;i8</c> in C order, converting to float32; writes float32.
/// Errors name the file: <see cref="InvalidDataException"/> for bad magic, header, dtype or truncated data,
/// <see cref="NotSupportedException"/> for Fortran-ordered arrays.
/// </summary>
public static partial class NpyFile
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];
    private const string InMemory = "<in-memory npy>";

    /// <summary>Reads the .npy file at <paramref name="path"/>.</summary>
    public static NpyArray Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses .npy bytes; <paramref name="source"/> names the data in error messages (usually the file path).</summary>
    public static NpyArray Parse(ReadOnlySpan<byte> npy, string source = InMemory)
    {
        if (npy.Length < Magic.Length + 2 || !npy[..Magic.Length].SequenceEqual(Magic))
            throw Corrupt(source, "the magic string \\x93NUMPY is missing (not a .npy file)");
        int major = npy[6];
        int lengthBytes = major switch
        {
            1 => 2,
            2 or 3 => 4,
            _ => throw Corrupt(source, $"unknown format version {major}.{npy[7]}"),
        };
        int preamble = 8 + lengthBytes;
        if (npy.Length < preamble)
            throw Corrupt(source, "truncated: the header length is cut off");
        long headerLength = lengthBytes == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(npy[8..]) : BinaryPrimitives.ReadUInt32LittleEndian(npy[8..]);
        if (preamble + headerLength > npy.Length)
            throw Corrupt(source, $"truncated: the header declares {headerLength} bytes but the file holds {npy.Length - preamble} after the preamble");
        // Version 3.0 allows UTF-8 in the header; 1.0 and 2.0 are Latin-1, of which our fields only use ASCII.
        string header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(npy.Slice(preamble, (int)headerLength));

        string descr = HeaderField(DescrPattern(), header, "descr", source);
        string fortran = HeaderField(FortranPattern(), header, "fortran_order", source);
        int[] shape = ParseShape(HeaderField(ShapePattern(), header, "shape", source), source);
        if (fortran == "True")
            throw new NotSupportedException($"'{source}': Fortran-ordered (fortran_order: True) arrays are not supported; save the array in C order (np.ascontiguousarray).");

        int itemSize = ItemSize(descr, source);
        long count = shape.Aggregate(1L, (product, extent) => product * extent);
        if (count > Array.MaxLength)
            throw Corrupt(source, $"the array of shape ({string.Join(", ", shape)}) is too large to read");
        ReadOnlySpan<byte> body = npy[(preamble + (int)headerLength)..];
        if (body.Length < count * itemSize)
            throw Corrupt(source, $"truncated: shape ({string.Join(", ", shape)}) of '{descr}' needs {count * itemSize} data bytes but the file holds {body.Length}");
        return new NpyArray(shape, Convert(body, descr, (int)count));
    }

    /// <summary>Writes float32 <paramref name="data"/> with <paramref name="shape"/> (C order) to <paramref name="path"/> atomically.</summary>
    public static void Write(string path, ReadOnlySpan<int> shape, ReadOnlySpan<float> data) =>
        AtomicFile.WriteAllBytes(path, Encode(shape, data));

    /// <summary>Encodes float32 <paramref name="data"/> with <paramref name="shape"/> as .npy bytes (version 1.0 unless the header needs 2.0).</summary>
    public static byte[] Encode(ReadOnlySpan<int> shape, ReadOnlySpan<float> data)
    {
        long count = 1;
        foreach (int extent in shape)
        {
            if (extent < 0)
                throw new ArgumentException($"Shape extents must be ≥ 0, got {extent}.", nameof(shape));
            count *= extent;
        }
        if (count != data.Length)
            throw new ArgumentException($"Shape ({string.Join(", ", shape.ToArray())}) holds {count} values but {data.Length} were given.", nameof(data));

        // Python tuple literal: "()", "(5,)", "(2, 3)".
        string tuple = shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape.ToArray())})";
        string dictionary = $"{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}";
        // The header is padded with spaces and ends in '\n' so that the data starts at a multiple of 64 bytes.
        int lengthBytes = 2;
        int headerLength = PaddedHeaderLength(dictionary, 8 + lengthBytes);
        if (headerLength > ushort.MaxValue)
        {
            lengthBytes = 4; // version 2.0
            headerLength = PaddedHeaderLength(dictionary, 8 + lengthBytes);
        }
        int preamble = 8 + lengthBytes;
        string header = dictionary.PadRight(headerLength - 1) + "\n";

        var bytes = new byte[preamble + headerLength + 4L * data.Length];
        Magic.CopyTo(bytes);
        bytes[6] = lengthBytes == 2 ? (byte)1 : (byte)2;
        bytes[7] = 0;
        if (lengthBytes == 2)
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)headerLength);
        else
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)headerLength);
        Encoding.ASCII.GetBytes(header, bytes.AsSpan(preamble));
        Span<byte> body = bytes.AsSpan(preamble + headerLength);
        for (int i = 0; i < data.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(body[(4 * i)..], data[i]);
        return bytes;
    }

    private static int PaddedHeaderLength(string dictionary, int preamble)
    {
        int length = dictionary.Length + 1;
        return length + (64 - (preamble + length) % 64) % 64;
    }

    private static string HeaderField(Regex pattern, string header, string key, string source)
    {
        Match match = pattern.Match(header);
        if (!match.Success)
            throw Corrupt(source, $"the header has no readable '{key}' entry: {header.Trim()}");
        return match.Groups[1].Value;
    }

    private static int[] ParseShape(string tuple, string source)
    {
        string[] parts = tuple.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var shape = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i].TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]))
                throw Corrupt(source, $"the shape entry '({tuple})' is not a tuple of non-negative integers");
        return shape;
    }

    /// <summary>Bytes per element of a dtype we read (little-endian '&lt;' or, for one-byte types, '|').</summary>
    private static int ItemSize(string descr, string source) => descr switch
    {
        "<f4" or "<i4" => 4,
        "<f8" or "<i8" => 8,
        "<u2" or "<i2" => 2,
        "|u1" or "<u1" or "|i1" or "<i1" => 1,
        _ => throw Corrupt(source, $"dtype '{descr}' is not supported (readable: <f4, <f8, |u1, |i1, <u2, <i2, <i4, <i8, little-endian)"),
    };

    private static float[] Convert(ReadOnlySpan<byte> body, string descr, int count)
    {
        var values = new float[count];
        switch (descr)
        {
            case "<f4":
                for (int i = 0; i < count; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(body[(4 * i)..]);
                break;
            case "<f8":
                for (int i = 0; i < count; i++) values[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(body[(8 * i)..]);
                break;
            case "<i4":
                for (int i = 0; i < count; i++) values[i] = BinaryPrimitives.ReadInt32LittleEndian(body[(4 * i)..]);
                break;
            case "<i8":
                for (int i = 0; i < count; i++) values[i] = BinaryPrimitives.ReadInt64LittleEndian(body[(8 * i)..]);
                break;
            case "<u2":
                for (int i = 0; i < count; i++) values[i] = BinaryPrimitives.ReadUInt16LittleEndian(body[(2 * i)..]);
                break;
            case "<i2":
                for (int i = 0; i < count; i++) values[i] = BinaryPrimitives.ReadInt16LittleEndian(body[(2 * i)..]);
                break;
            case "|i1" or "<i1":
                for (int i = 0; i < count; i++) values[i] = (sbyte)body[i];
                break;
            default: // |u1
                for (int i = 0; i < count; i++) values[i] = body[i];
                break;
        }
        return values;
    }

    [GeneratedRegex(@"['""]descr['""]\s*:\s*['""]([^'""]*)['""]")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"['""]fortran_order['""]\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"['""]shape['""]\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();

    private static InvalidDataException Corrupt(string source, string problem) =>
        new($"'{source}' is not a valid .npy file: {problem}.");
}
