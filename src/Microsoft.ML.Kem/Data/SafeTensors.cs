using System.Buffers.Binary;
using System.Text.Json;

namespace Microsoft.ML.Kem.Data;

/// <summary>Element types of a safetensors file that KemMl reads and writes.</summary>
public enum SafeTensorDType
{
    /// <summary>IEEE float32 ("F32").</summary>
    F32,
    /// <summary>IEEE float16 ("F16").</summary>
    F16,
    /// <summary>bfloat16: the upper half of a float32 ("BF16").</summary>
    BF16,
    /// <summary>IEEE float64 ("F64").</summary>
    F64,
    /// <summary>Signed 64-bit integer ("I64"; BatchNorm's num_batches_tracked).</summary>
    I64,
}

/// <summary>One named tensor of a safetensors file: its element type, shape and raw little-endian bytes (C order).</summary>
/// <param name="Name">Key in the header.</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Extent of each axis; empty for a scalar.</param>
/// <param name="Data">Product(Shape) × element size bytes.</param>
public sealed record SafeTensor(string Name, SafeTensorDType DType, long[] Shape, byte[] Data)
{
    /// <summary>Number of elements: the product of <see cref="Shape"/>.</summary>
    public long Count => Shape.Aggregate(1L, (product, extent) => product * extent);

    /// <summary>The values converted to float32 (F16, BF16, F64 and I64 are widened or narrowed).</summary>
    public float[] ToFloat32()
    {
        int n = checked((int)Count);
        var values = new float[n];
        ReadOnlySpan<byte> d = Data;
        switch (DType)
        {
            case SafeTensorDType.F32:
                for (int i = 0; i < n; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(d[(4 * i)..]);
                break;
            case SafeTensorDType.F16:
                for (int i = 0; i < n; i++) values[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(d[(2 * i)..]);
                break;
            case SafeTensorDType.BF16:
                for (int i = 0; i < n; i++) values[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(d[(2 * i)..]) << 16);
                break;
            case SafeTensorDType.F64:
                for (int i = 0; i < n; i++) values[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(d[(8 * i)..]);
                break;
            default:
                for (int i = 0; i < n; i++) values[i] = BinaryPrimitives.ReadInt64LittleEndian(d[(8 * i)..]);
                break;
        }
        return values;
    }

    /// <summary>The values as int64 (I64 only).</summary>
    public long[] ToInt64()
    {
        if (DType != SafeTensorDType.I64)
            throw new InvalidOperationException($"Tensor '{Name}' is {DType}, not I64.");
        var values = new long[Count];
        for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadInt64LittleEndian(Data.AsSpan(8 * i));
        return values;
    }

    /// <summary>A float32 tensor from <paramref name="values"/>.</summary>
    public static SafeTensor FromFloat32(string name, long[] shape, ReadOnlySpan<float> values)
    {
        var data = new byte[4 * values.Length];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4 * i), values[i]);
        return Checked(new SafeTensor(name, SafeTensorDType.F32, shape, data));
    }

    /// <summary>An int64 tensor from <paramref name="values"/>.</summary>
    public static SafeTensor FromInt64(string name, long[] shape, ReadOnlySpan<long> values)
    {
        var data = new byte[8 * values.Length];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(8 * i), values[i]);
        return Checked(new SafeTensor(name, SafeTensorDType.I64, shape, data));
    }

    private static SafeTensor Checked(SafeTensor t)
    {
        if (t.Shape.Any(e => e < 0) || t.Count * SafeTensors.SizeOf(t.DType) != t.Data.Length)
            throw new ArgumentException($"Tensor '{t.Name}': shape [{string.Join(", ", t.Shape)}] does not match {t.Data.Length} bytes of {t.DType}.");
        return t;
    }
}

/// <summary>
/// Reader and writer of the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
/// length N, N bytes of UTF-8 JSON mapping each tensor name to <c>{"dtype", "shape", "data_offsets": [begin, end]}</c>
/// (plus an optional <c>"__metadata__"</c> string map), then the byte buffer the offsets point into.
/// The reader checks every offset: in range, size = elements × element size, and the tensors tile the buffer with no
/// gap or overlap. Errors are <see cref="InvalidDataException"/> naming the file (and the tensor).
/// </summary>
public static class SafeTensors
{
    private const string InMemory = "<in-memory safetensors>";
    private const string MetadataKey = "__metadata__";
    /// <summary>Largest header we accept (the reference implementation's limit).</summary>
    public const int MaxHeaderBytes = 100_000_000;

    /// <summary>Bytes per element of <paramref name="dtype"/>.</summary>
    public static int SizeOf(SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F16 or SafeTensorDType.BF16 => 2,
        SafeTensorDType.F32 => 4,
        _ => 8,
    };

    /// <summary>Reads every tensor of the file at <paramref name="path"/>, keyed by name.</summary>
    public static IReadOnlyDictionary<string, SafeTensor> Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Safetensors file '{path}' does not exist.", path);
        return Parse(File.ReadAllBytes(path), path).Tensors;
    }

    /// <summary>Parses safetensors bytes; <paramref name="source"/> names the data in error messages.</summary>
    public static (IReadOnlyDictionary<string, SafeTensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Parse(ReadOnlySpan<byte> bytes, string source = InMemory)
    {
        if (bytes.Length < 8) throw Corrupt(source, $"{bytes.Length} bytes is too short for the 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > MaxHeaderBytes) throw Corrupt(source, $"the header length {headerLength} exceeds {MaxHeaderBytes} bytes");
        if (8 + (long)headerLength > bytes.Length) throw Corrupt(source, $"the header declares {headerLength} bytes but the file holds {bytes.Length - 8} after the length");
        ReadOnlySpan<byte> buffer = bytes[(8 + (int)headerLength)..];

        JsonDocument json;
        try { json = JsonDocument.Parse(bytes.Slice(8, (int)headerLength).ToArray()); }
        catch (JsonException e) { throw Corrupt(source, $"the header is not valid JSON ({e.Message})"); }
        using var _ = json;
        if (json.RootElement.ValueKind != JsonValueKind.Object) throw Corrupt(source, "the header is not a JSON object");

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<(string Name, SafeTensorDType DType, long[] Shape, long Begin, long End)>();
        foreach (var property in json.RootElement.EnumerateObject())
        {
            if (property.Name == MetadataKey)
            {
                if (property.Value.ValueKind != JsonValueKind.Object) throw Corrupt(source, "__metadata__ is not an object");
                foreach (var m in property.Value.EnumerateObject())
                    metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : throw Corrupt(source, $"__metadata__ value '{m.Name}' is not a string");
                continue;
            }
            entries.Add(ParseEntry(property, source));
        }

        // The tensors must tile the buffer exactly: sorted by begin, each starts where the previous ended.
        long expected = 0;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin != expected)
                throw Corrupt(source, e.Begin > expected
                    ? $"tensor '{e.Name}' starts at byte {e.Begin}, leaving a gap after byte {expected} of the data buffer"
                    : $"tensor '{e.Name}' at bytes [{e.Begin}, {e.End}) overlaps another tensor");
            expected = e.End;
        }
        if (expected != buffer.Length)
            throw Corrupt(source, $"the tensors cover {expected} bytes but the data buffer holds {buffer.Length}");

        var tensors = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        foreach (var e in entries)
            tensors[e.Name] = new SafeTensor(e.Name, e.DType, e.Shape, buffer[(int)e.Begin..(int)e.End].ToArray());
        return (tensors, metadata);
    }

    private static (string, SafeTensorDType, long[], long, long) ParseEntry(JsonProperty property, string source)
    {
        string name = property.Name;
        var v = property.Value;
        if (v.ValueKind != JsonValueKind.Object) throw Corrupt(source, $"tensor '{name}': the entry is not an object");
        if (!v.TryGetProperty("dtype", out var dtypeJson) || dtypeJson.ValueKind != JsonValueKind.String)
            throw Corrupt(source, $"tensor '{name}' has no dtype");
        SafeTensorDType dtype = dtypeJson.GetString() switch
        {
            "F32" => SafeTensorDType.F32,
            "F16" => SafeTensorDType.F16,
            "BF16" => SafeTensorDType.BF16,
            "F64" => SafeTensorDType.F64,
            "I64" => SafeTensorDType.I64,
            var other => throw Corrupt(source, $"tensor '{name}' has dtype '{other}'; supported: F32, F16, BF16, F64, I64"),
        };
        long[] shape = ReadIntegers(v, "shape", name, source);
        long[] offsets = ReadIntegers(v, "data_offsets", name, source);
        if (offsets.Length != 2 || offsets[1] < offsets[0])
            throw Corrupt(source, $"tensor '{name}': data_offsets must be [begin, end] with begin ≤ end, got [{string.Join(", ", offsets)}]");
        long count = 1;
        foreach (long extent in shape) count = checked(count * extent);
        long size = checked(count * SizeOf(dtype));
        if (offsets[1] - offsets[0] != size)
            throw Corrupt(source, $"tensor '{name}': shape [{string.Join(", ", shape)}] of {dtype} needs {size} bytes but data_offsets [{offsets[0]}, {offsets[1]}) span {offsets[1] - offsets[0]}");
        return (name, dtype, shape, offsets[0], offsets[1]);
    }

    private static long[] ReadIntegers(JsonElement entry, string key, string name, string source)
    {
        if (!entry.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array)
            throw Corrupt(source, $"tensor '{name}' has no {key} array");
        var values = new List<long>();
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long value) || value < 0)
                throw Corrupt(source, $"tensor '{name}': {key} must hold non-negative integers");
            values.Add(value);
        }
        return values.ToArray();
    }

    /// <summary>Writes <paramref name="tensors"/> (in the given order) and optional metadata to <paramref name="path"/>, atomically.</summary>
    public static void Write(string path, IEnumerable<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        AtomicFile.WriteAllBytes(path, Encode(tensors, metadata));

    /// <summary>Encodes tensors as safetensors bytes; the header is padded with spaces so the data starts 8-byte aligned.</summary>
    public static byte[] Encode(IEnumerable<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var duplicate = list.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"Tensor name '{duplicate.Key}' is used twice.", nameof(tensors));
        using var header = new MemoryStream();
        using (var writer = new Utf8JsonWriter(header))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata) writer.WriteString(key, value);
                writer.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in list)
            {
                if (t.Count * SizeOf(t.DType) != t.Data.Length)
                    throw new ArgumentException($"Tensor '{t.Name}': shape [{string.Join(", ", t.Shape)}] does not match {t.Data.Length} bytes of {t.DType}.", nameof(tensors));
                writer.WriteStartObject(t.Name);
                writer.WriteString("dtype", t.DType.ToString());
                writer.WriteStartArray("shape");
                foreach (long extent in t.Shape) writer.WriteNumberValue(extent);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + t.Data.Length);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset += t.Data.Length;
            }
            writer.WriteEndObject();
        }
        byte[] json = header.ToArray();
        int padded = (json.Length + 7) / 8 * 8;
        var bytes = new byte[8 + padded + list.Sum(t => (long)t.Data.Length)];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        json.CopyTo(bytes, 8);
        bytes.AsSpan(8 + json.Length, padded - json.Length).Fill((byte)' ');
        long at = 8 + padded;
        foreach (var t in list)
        {
            t.Data.CopyTo(bytes, at);
            at += t.Data.Length;
        }
        return bytes;
    }

    private static InvalidDataException Corrupt(string source, string problem) =>
        new($"'{source}' is not a valid safetensors file: {problem}.");
}
