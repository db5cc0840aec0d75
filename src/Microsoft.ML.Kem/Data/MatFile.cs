using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Microsoft.ML.Kem.Data;

/// <summary>MATLAB array classes (the mxCLASS codes of the MAT v5 array flags).</summary>
public enum MatClass
{
    /// <summary>Cell array.</summary>
    Cell = 1,
    /// <summary>Structure array.</summary>
    Struct = 2,
    /// <summary>Object (not read).</summary>
    Object = 3,
    /// <summary>Character array.</summary>
    Char = 4,
    /// <summary>Sparse matrix (not read).</summary>
    Sparse = 5,
    /// <summary>double.</summary>
    Double = 6,
    /// <summary>single.</summary>
    Single = 7,
    /// <summary>int8.</summary>
    Int8 = 8,
    /// <summary>uint8 (also logical arrays, with the logical flag).</summary>
    UInt8 = 9,
    /// <summary>int16.</summary>
    Int16 = 10,
    /// <summary>uint16.</summary>
    UInt16 = 11,
    /// <summary>int32.</summary>
    Int32 = 12,
    /// <summary>uint32.</summary>
    UInt32 = 13,
    /// <summary>int64.</summary>
    Int64 = 14,
    /// <summary>uint64.</summary>
    UInt64 = 15,
}

/// <summary>One MATLAB array read from a MAT v5 file. <see cref="Dimensions"/> are MATLAB's (rows first); data is column-major.</summary>
/// <param name="Name">Variable name (empty inside structs and cells).</param>
/// <param name="Dimensions">Extent of each axis, at least two.</param>
public abstract record MatArray(string Name, int[] Dimensions)
{
    /// <summary>Number of elements: the product of the dimensions.</summary>
    public int Count => Dimensions.Aggregate(1, (product, extent) => checked(product * extent));

    /// <summary>Rows (first dimension).</summary>
    public int Rows => Dimensions[0];
}

/// <summary>A numeric or logical array. Values keep the element type they were stored with (MATLAB stores integer-valued doubles as small integers).</summary>
/// <param name="Name">Variable name.</param>
/// <param name="Dimensions">MATLAB dimensions.</param>
/// <param name="Class">The array's MATLAB class.</param>
/// <param name="IsLogical">True for logical arrays.</param>
/// <param name="Stored">The stored element type (miINT8 … miDOUBLE).</param>
/// <param name="Data">Raw little-endian elements, column-major.</param>
public sealed record MatNumericArray(string Name, int[] Dimensions, MatClass Class, bool IsLogical, MatFile.DataType Stored, byte[] Data)
    : MatArray(Name, Dimensions)
{
    /// <summary>Element <paramref name="index"/> (column-major) as a double.</summary>
    public double this[int index] => Stored switch
    {
        MatFile.DataType.Int8 => (sbyte)Data[index],
        MatFile.DataType.UInt8 => Data[index],
        MatFile.DataType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(Data.AsSpan(2 * index)),
        MatFile.DataType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(Data.AsSpan(2 * index)),
        MatFile.DataType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(Data.AsSpan(4 * index)),
        MatFile.DataType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(Data.AsSpan(4 * index)),
        MatFile.DataType.Single => BinaryPrimitives.ReadSingleLittleEndian(Data.AsSpan(4 * index)),
        MatFile.DataType.Double => BinaryPrimitives.ReadDoubleLittleEndian(Data.AsSpan(8 * index)),
        MatFile.DataType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(Data.AsSpan(8 * index)),
        _ => BinaryPrimitives.ReadUInt64LittleEndian(Data.AsSpan(8 * index)),
    };

    /// <summary>All values, column-major, as doubles.</summary>
    public double[] ToDoubles()
    {
        var values = new double[Count];
        for (int i = 0; i < values.Length; i++) values[i] = this[i];
        return values;
    }

    /// <summary>A 2-D array as a row-major H×W map (MATLAB's rows are image rows). Throws unless the array has exactly two dimensions.</summary>
    public double[] ToRowMajor()
    {
        if (Dimensions.Length != 2) throw new InvalidOperationException($"Array '{Name}' has {Dimensions.Length} dimensions; a map needs 2.");
        int rows = Rows, cols = Dimensions[1];
        var values = new double[Count];
        for (int c = 0; c < cols; c++)
            for (int r = 0; r < rows; r++)
                values[r * cols + c] = this[c * rows + r];
        return values;
    }
}

/// <summary>A character array; <see cref="Text"/> is its rows joined by newlines (a 1×N array is just the string).</summary>
public sealed record MatCharArray(string Name, int[] Dimensions, string Text) : MatArray(Name, Dimensions);

/// <summary>A cell array; <see cref="Cells"/> are column-major.</summary>
public sealed record MatCellArray(string Name, int[] Dimensions, IReadOnlyList<MatArray> Cells) : MatArray(Name, Dimensions);

/// <summary>A structure array: <see cref="Elements"/> (column-major), each mapping every field name to its value.</summary>
public sealed record MatStructArray(string Name, int[] Dimensions, IReadOnlyList<string> FieldNames, IReadOnlyList<IReadOnlyDictionary<string, MatArray>> Elements)
    : MatArray(Name, Dimensions)
{
    /// <summary>Field <paramref name="field"/> of element <paramref name="index"/>, or null when the struct has no such field.</summary>
    public MatArray? Field(int index, string field) => Elements[index].TryGetValue(field, out var value) ? value : null;
}

/// <summary>
/// Reader of the subset of the MATLAB MAT-file v5 format that datasets use (MATLAB "Level 5 MAT-File Format"; files saved
/// with <c>-v6</c> or the default <c>-v7</c>): little-endian files, miMATRIX elements of class double, single, integer,
/// logical, char, struct and cell, small data elements, and miCOMPRESSED (zlib) elements. Not read: v7.3 (HDF5) files,
/// big-endian files, sparse, object and complex arrays. Errors name the file:
/// <see cref="InvalidDataException"/> for corrupt data, <see cref="NotSupportedException"/> for the parts not read.
/// </summary>
public static class MatFile
{
    /// <summary>MAT v5 data element types (miINT8 …).</summary>
    public enum DataType
    {
        /// <summary>miINT8.</summary>
        Int8 = 1,
        /// <summary>miUINT8.</summary>
        UInt8 = 2,
        /// <summary>miINT16.</summary>
        Int16 = 3,
        /// <summary>miUINT16.</summary>
        UInt16 = 4,
        /// <summary>miINT32.</summary>
        Int32 = 5,
        /// <summary>miUINT32.</summary>
        UInt32 = 6,
        /// <summary>miSINGLE.</summary>
        Single = 7,
        /// <summary>miDOUBLE.</summary>
        Double = 9,
        /// <summary>miINT64.</summary>
        Int64 = 12,
        /// <summary>miUINT64.</summary>
        UInt64 = 13,
        /// <summary>miMATRIX: an array.</summary>
        Matrix = 14,
        /// <summary>miCOMPRESSED: a zlib stream holding one element.</summary>
        Compressed = 15,
        /// <summary>miUTF8.</summary>
        Utf8 = 16,
        /// <summary>miUTF16.</summary>
        Utf16 = 17,
        /// <summary>miUTF32.</summary>
        Utf32 = 18,
    }

    private const int HeaderBytes = 128;
    private const string InMemory = "<in-memory MAT-file>";
    private const uint ComplexFlag = 0x800, LogicalFlag = 0x200;

    /// <summary>Reads the variables of the MAT-file at <paramref name="path"/>, by name.</summary>
    public static IReadOnlyDictionary<string, MatArray> Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"MAT-file '{path}' does not exist.", path);
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses MAT-file bytes; <paramref name="source"/> names the data in error messages.</summary>
    public static IReadOnlyDictionary<string, MatArray> Parse(byte[] bytes, string source = InMemory)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (bytes.Length < HeaderBytes)
            throw new InvalidDataException($"'{source}' is not a MAT-file: {bytes.Length} bytes is shorter than the 128-byte header.");
        string text = Encoding.ASCII.GetString(bytes, 0, 116);
        if (text.StartsWith("MATLAB 7.3", StringComparison.Ordinal))
            throw new NotSupportedException($"'{source}' is a MAT v7.3 (HDF5) file; re-save it with save(..., '-v7') to read it here.");
        if (bytes[126] == 'M' && bytes[127] == 'I')
            throw new NotSupportedException($"'{source}' is a big-endian MAT-file; only little-endian files are read.");
        if (bytes[126] != 'I' || bytes[127] != 'M')
            throw new InvalidDataException($"'{source}' is not a MAT v5 file: the endian indicator at byte 126 is not 'IM'.");
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(124));
        if (version != 0x0100)
            throw new InvalidDataException($"'{source}' is not a MAT v5 file: header version 0x{version:X4} (expected 0x0100).");

        var variables = new Dictionary<string, MatArray>(StringComparer.Ordinal);
        var reader = new ElementReader(bytes, HeaderBytes, bytes.Length, source, "");
        while (reader.HasMore)
        {
            var array = reader.ReadTopLevel();
            if (array is not null) variables[array.Name] = array;
        }
        return variables;
    }

    /// <summary>Walks the data elements in bytes [position, end) of one buffer (the file, or a decompressed element).</summary>
    private sealed class ElementReader(byte[] bytes, int position, int end, string source, string where)
    {
        public bool HasMore => end - position >= 8 && !AllZero(); // trailing zero padding is not an element

        private bool AllZero() => bytes.AsSpan(position, end - position).IndexOfAnyExcept((byte)0) < 0;

        /// <summary>A top-level element: a variable (miMATRIX, possibly inside miCOMPRESSED); other element types are skipped.</summary>
        public MatArray? ReadTopLevel()
        {
            var (type, data, _) = ReadElement();
            return type switch
            {
                DataType.Compressed => Inflated(data).ReadTopLevel(),
                DataType.Matrix => ParseMatrix(data),
                _ => null,
            };
        }

        /// <summary>A miMATRIX element (possibly compressed), as found inside structs and cells.</summary>
        public MatArray ReadMatrix()
        {
            int at = position;
            var (type, data, _) = ReadElement();
            return type switch
            {
                DataType.Matrix => ParseMatrix(data),
                DataType.Compressed => Inflated(data).ReadMatrix(),
                _ => throw Corrupt($"expected an array (miMATRIX) but found data type {(int)type}", at),
            };
        }

        /// <summary>Tag and data of the next element; small elements keep their data in the tag's second word.</summary>
        public (DataType Type, ArraySegment<byte> Data, int Start) ReadElement()
        {
            int start = position;
            if (end - position < 8) throw Corrupt("truncated element tag", position);
            uint word = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(position));
            if (word >> 16 != 0)
            {
                // Small data element: 16-bit size, 16-bit type, up to 4 bytes of data in the same 8 bytes.
                int smallSize = (int)(word >> 16);
                if (smallSize > 4) throw Corrupt($"small data element claims {smallSize} bytes (at most 4)", start);
                position += 8;
                return ((DataType)(word & 0xFFFF), new ArraySegment<byte>(bytes, start + 4, smallSize), start);
            }
            var type = (DataType)word;
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(position + 4));
            if (size > end - position - 8) throw Corrupt($"element of data type {(int)type} declares {size} bytes but only {end - position - 8} remain", start);
            position += 8;
            var data = new ArraySegment<byte>(bytes, position, (int)size);
            position += (int)size;
            if (type != DataType.Compressed) position = Math.Min(end, (position + 7) & ~7); // data is padded to 8 bytes
            return (type, data, start);
        }

        private ElementReader Inflated(ArraySegment<byte> compressed)
        {
            try
            {
                using var input = new MemoryStream(compressed.Array!, compressed.Offset, compressed.Count);
                using var zlib = new ZLibStream(input, CompressionMode.Decompress);
                using var output = new MemoryStream();
                zlib.CopyTo(output);
                byte[] inflated = output.ToArray();
                return new ElementReader(inflated, 0, inflated.Length, source, $" inside the compressed element at byte {compressed.Offset - 8}{where}");
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"'{source}' is not a valid MAT-file: the compressed element at byte {compressed.Offset - 8}{where} does not inflate ({e.Message}).", e);
            }
        }

        private MatArray ParseMatrix(ArraySegment<byte> element)
        {
            int offset = element.Offset;
            if (element.Count == 0) return new MatNumericArray("", [0, 0], MatClass.Double, false, DataType.Double, []); // [] in a struct field
            var sub = new ElementReader(bytes, element.Offset, element.Offset + element.Count, source, where);

            var (flagsType, flags, _) = sub.ReadElement();
            if (flagsType != DataType.UInt32 || flags.Count != 8) throw Corrupt("array flags are missing", offset);
            uint flagWord = BinaryPrimitives.ReadUInt32LittleEndian(flags);
            var cls = (MatClass)(flagWord & 0xFF);
            bool complex = (flagWord & ComplexFlag) != 0, logical = (flagWord & LogicalFlag) != 0;

            var (dimsType, dimsData, _) = sub.ReadElement();
            if (dimsType != DataType.Int32 || dimsData.Count < 8 || dimsData.Count % 4 != 0) throw Corrupt("array dimensions are missing", offset);
            int[] dims = new int[dimsData.Count / 4];
            for (int i = 0; i < dims.Length; i++)
            {
                dims[i] = BinaryPrimitives.ReadInt32LittleEndian(dimsData.AsSpan(4 * i));
                if (dims[i] < 0) throw Corrupt($"negative dimension {dims[i]}", offset);
            }
            var (nameType, nameData, _) = sub.ReadElement();
            if (nameType != DataType.Int8) throw Corrupt("array name is missing", offset);
            string name = Encoding.ASCII.GetString(nameData);
            long count = dims.Aggregate(1L, (p, e) => p * e);
            if (count > Array.MaxLength) throw Corrupt($"array '{name}' with dimensions {string.Join("×", dims)} is too large", offset);

            switch (cls)
            {
                case MatClass.Cell:
                    var cells = new MatArray[count];
                    for (int i = 0; i < count; i++) cells[i] = sub.ReadMatrix();
                    return new MatCellArray(name, dims, cells);
                case MatClass.Struct:
                    return ParseStruct(sub, name, dims, (int)count, offset);
                case MatClass.Char:
                    return new MatCharArray(name, dims, CharText(sub, name, dims, (int)count, offset));
                case >= MatClass.Double and <= MatClass.UInt64:
                    if (complex) throw new NotSupportedException($"'{source}': array '{name}' is complex; only real arrays are read.");
                    var (dataType, data, at) = sub.ReadElement();
                    int size = ElementSize(dataType, name, at);
                    if (data.Count != count * size)
                        throw Corrupt($"array '{name}' ({cls}, {string.Join("×", dims)}) has {data.Count} data bytes of type {dataType}; expected {count * size}", at);
                    return new MatNumericArray(name, dims, cls, logical, dataType, data.ToArray());
                default:
                    throw new NotSupportedException($"'{source}': array '{name}' has class {cls} ({(int)cls}); only numeric, logical, char, struct and cell arrays are read.");
            }
        }

        private MatStructArray ParseStruct(ElementReader sub, string name, int[] dims, int count, int offset)
        {
            var (lengthType, lengthData, _) = sub.ReadElement();
            if (lengthType != DataType.Int32 || lengthData.Count != 4) throw Corrupt($"struct '{name}' has no field name length", offset);
            int fieldLength = BinaryPrimitives.ReadInt32LittleEndian(lengthData);
            var (namesType, namesData, _) = sub.ReadElement();
            if (namesType != DataType.Int8 || fieldLength <= 0 || namesData.Count % fieldLength != 0)
                throw Corrupt($"struct '{name}' has malformed field names", offset);
            var fields = new string[namesData.Count / fieldLength];
            for (int f = 0; f < fields.Length; f++)
            {
                var raw = namesData.AsSpan(f * fieldLength, fieldLength);
                int nul = raw.IndexOf((byte)0);
                fields[f] = Encoding.ASCII.GetString(nul < 0 ? raw : raw[..nul]);
            }
            var elements = new IReadOnlyDictionary<string, MatArray>[count];
            for (int i = 0; i < count; i++)
            {
                var values = new Dictionary<string, MatArray>(StringComparer.Ordinal);
                foreach (string field in fields) values[field] = sub.ReadMatrix();
                elements[i] = values;
            }
            return new MatStructArray(name, dims, fields, elements);
        }

        private string CharText(ElementReader sub, string name, int[] dims, int count, int offset)
        {
            if (count == 0) return "";
            var (type, data, at) = sub.ReadElement();
            string flat = type switch
            {
                DataType.UInt16 or DataType.Utf16 => Encoding.Unicode.GetString(data),
                DataType.Utf8 or DataType.UInt8 or DataType.Int8 => Encoding.UTF8.GetString(data),
                DataType.Utf32 => Encoding.UTF32.GetString(data),
                _ => throw Corrupt($"char array '{name}' stores data type {(int)type}", at),
            };
            if (flat.Length != count) throw Corrupt($"char array '{name}' ({string.Join("×", dims)}) holds {flat.Length} characters", at);
            int rows = dims[0], cols = count / Math.Max(rows, 1);
            if (rows <= 1) return flat;
            // Column-major characters → one line per row.
            var lines = new string[rows];
            for (int r = 0; r < rows; r++)
                lines[r] = new string(Enumerable.Range(0, cols).Select(c => flat[c * rows + r]).ToArray());
            return string.Join('\n', lines);
        }

        private int ElementSize(DataType type, string name, int at) => type switch
        {
            DataType.Int8 or DataType.UInt8 => 1,
            DataType.Int16 or DataType.UInt16 => 2,
            DataType.Int32 or DataType.UInt32 or DataType.Single => 4,
            DataType.Double or DataType.Int64 or DataType.UInt64 => 8,
            _ => throw Corrupt($"array '{name}' stores its values as data type {(int)type}, which is not numeric", at),
        };

        private InvalidDataException Corrupt(string problem, int at) =>
            new($"'{source}' is not a valid MAT-file: {problem} (at byte {at}{where}).");
    }
}
