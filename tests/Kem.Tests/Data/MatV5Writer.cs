using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Kem.Tests.Data;

/// <summary>
/// Test-only MAT v5 writer, written from the MathWorks format description independently of the reader: 128-byte header,
/// tagged elements padded to 8 bytes, small data elements for ≤ 4 bytes (as MATLAB writes names), optional miCOMPRESSED
/// wrapping of each variable, and numeric data stored in a chosen element type (MATLAB stores integer-valued doubles as
/// miUINT8 and the like).
/// </summary>
internal static class MatV5Writer
{
    internal abstract record Value;
    /// <summary>Numeric array: values column-major, MATLAB class code (6 double, 9 uint8, …) and stored miTYPE (1..13).</summary>
    internal sealed record Numeric(int[] Dims, double[] ColumnMajor, int ClassCode = 6, int StoredType = 9, bool Logical = false) : Value;
    internal sealed record Chars(string Text, bool Utf8 = false) : Value;
    internal sealed record Struct(int[] Dims, string[] Fields, Value[][] Elements) : Value;
    internal sealed record Cell(int[] Dims, Value[] Items) : Value;
    /// <summary>An empty matrix written as a zero-length miMATRIX (how MATLAB writes [] inside structs).</summary>
    internal sealed record Empty : Value;

    private const int miINT8 = 1, miUINT8 = 2, miINT16 = 3, miUINT16 = 4, miINT32 = 5, miUINT32 = 6, miSINGLE = 7, miDOUBLE = 9,
        miMATRIX = 14, miCOMPRESSED = 15, miUTF8 = 16;

    public static byte[] File(bool compress, params (string Name, Value Value)[] variables)
    {
        var output = new MemoryStream();
        var header = new byte[128];
        Encoding.ASCII.GetBytes("MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: test".PadRight(116)).CopyTo(header, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(124), 0x0100);
        header[126] = (byte)'I';
        header[127] = (byte)'M';
        output.Write(header);
        foreach (var (name, value) in variables)
        {
            byte[] matrix = Matrix(name, value);
            if (!compress) { output.Write(matrix); continue; }
            var zipped = new MemoryStream();
            using (var z = new ZLibStream(zipped, CompressionLevel.Optimal, leaveOpen: true)) z.Write(matrix);
            output.Write(Tag(miCOMPRESSED, zipped.Length));
            output.Write(zipped.ToArray()); // compressed elements are not padded
        }
        return output.ToArray();
    }

    /// <summary>A row-major H×W mask as a column-major uint8 logical array.</summary>
    public static Numeric Mask(bool[] rowMajor, int height, int width)
    {
        var values = new double[height * width];
        for (int r = 0; r < height; r++)
            for (int c = 0; c < width; c++)
                values[c * height + r] = rowMajor[r * width + c] ? 1 : 0;
        return new Numeric([height, width], values, ClassCode: 9, StoredType: miUINT8, Logical: true);
    }

    public static Numeric Scalar(double value) => new([1, 1], [value], ClassCode: 6, StoredType: miUINT8);

    private static byte[] Matrix(string name, Value value)
    {
        if (value is Empty) return Tag(miMATRIX, 0);
        var body = new MemoryStream();
        (int classCode, int[] dims, bool logical) = value switch
        {
            Numeric n => (n.ClassCode, n.Dims, n.Logical),
            Chars c => (4, new[] { 1, c.Text.Length }, false),
            Struct s => (2, s.Dims, false),
            Cell c => (1, c.Dims, false),
            _ => throw new ArgumentException(value.GetType().Name),
        };
        var flags = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(flags, (uint)classCode | (logical ? 0x200u : 0u));
        body.Write(Element(miUINT32, flags));
        var dimBytes = new byte[4 * dims.Length];
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(dimBytes.AsSpan(4 * i), dims[i]);
        body.Write(Element(miINT32, dimBytes));
        body.Write(Element(miINT8, Encoding.ASCII.GetBytes(name)));
        switch (value)
        {
            case Numeric n:
                body.Write(Element(n.StoredType, Encode(n.ColumnMajor, n.StoredType)));
                break;
            case Chars c when c.Utf8:
                body.Write(Element(miUTF8, Encoding.UTF8.GetBytes(c.Text)));
                break;
            case Chars c:
                body.Write(Element(miUINT16, Encoding.Unicode.GetBytes(c.Text)));
                break;
            case Struct s:
                int length = 32; // MATLAB's field name slot
                var lengthBytes = new byte[4];
                BinaryPrimitives.WriteInt32LittleEndian(lengthBytes, length);
                body.Write(Element(miINT32, lengthBytes));
                var names = new byte[length * s.Fields.Length];
                for (int f = 0; f < s.Fields.Length; f++) Encoding.ASCII.GetBytes(s.Fields[f]).CopyTo(names, f * length);
                body.Write(Element(miINT8, names));
                foreach (var element in s.Elements)
                    foreach (var field in element) body.Write(Matrix("", field));
                break;
            case Cell c:
                foreach (var item in c.Items) body.Write(Matrix("", item));
                break;
        }
        return [.. Tag(miMATRIX, body.Length), .. body.ToArray()];
    }

    private static byte[] Encode(double[] values, int type)
    {
        int size = type switch { miINT8 or miUINT8 => 1, miINT16 or miUINT16 => 2, miINT32 or miUINT32 or miSINGLE => 4, _ => 8 };
        var bytes = new byte[size * values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            var at = bytes.AsSpan(size * i);
            switch (type)
            {
                case miINT8: at[0] = (byte)(sbyte)values[i]; break;
                case miUINT8: at[0] = (byte)values[i]; break;
                case miINT16: BinaryPrimitives.WriteInt16LittleEndian(at, (short)values[i]); break;
                case miUINT16: BinaryPrimitives.WriteUInt16LittleEndian(at, (ushort)values[i]); break;
                case miINT32: BinaryPrimitives.WriteInt32LittleEndian(at, (int)values[i]); break;
                case miUINT32: BinaryPrimitives.WriteUInt32LittleEndian(at, (uint)values[i]); break;
                case miSINGLE: BinaryPrimitives.WriteSingleLittleEndian(at, (float)values[i]); break;
                default: BinaryPrimitives.WriteDoubleLittleEndian(at, values[i]); break;
            }
        }
        return bytes;
    }

    /// <summary>A data element: small format when the data fits in 4 bytes, else tag + data padded to 8 bytes.</summary>
    private static byte[] Element(int type, byte[] data)
    {
        if (data.Length <= 4 && data.Length > 0)
        {
            var small = new byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(small, (uint)(data.Length << 16 | type));
            data.CopyTo(small, 4);
            return small;
        }
        int padded = (data.Length + 7) / 8 * 8;
        var bytes = new byte[8 + padded];
        Tag(type, data.Length).CopyTo(bytes, 0);
        data.CopyTo(bytes, 8);
        return bytes;
    }

    private static byte[] Tag(int type, long size)
    {
        var tag = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(tag, (uint)type);
        BinaryPrimitives.WriteUInt32LittleEndian(tag.AsSpan(4), (uint)size);
        return tag;
    }

    /// <summary>A PASCAL-Part style annotation: anno.imname, anno.objects(i).{class, class_ind, mask, parts(j).{part_name, mask}}.</summary>
    public static byte[] PartsAnnotation(string imageName, int height, int width, bool compress,
        params (string Class, int ClassId, bool[] Mask, (string Name, bool[] Mask)[] Parts)[] objects)
    {
        Value objectsValue = objects.Length == 0 ? new Empty() : new Struct([1, objects.Length], ["class", "class_ind", "mask", "parts"],
            objects.Select(o => new Value[]
            {
                new Chars(o.Class), Scalar(o.ClassId), Mask(o.Mask, height, width),
                o.Parts.Length == 0 ? new Empty() : new Struct([1, o.Parts.Length], ["part_name", "mask"],
                    o.Parts.Select(p => new Value[] { new Chars(p.Name, Utf8: true), Mask(p.Mask, height, width) }).ToArray()),
            }).ToArray());
        var anno = new Struct([1, 1], ["imname", "objects"], [[new Chars(imageName), objectsValue]]);
        return File(compress, ("anno", anno));
    }
}
