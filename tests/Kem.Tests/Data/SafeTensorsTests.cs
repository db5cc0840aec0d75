using System.Buffers.Binary;
using System.Text;
using Microsoft.ML.Kem.Data;

namespace Kem.Tests.Data;

[TestClass]
public sealed class SafeTensorsTests
{
    /// <summary>A safetensors file built by hand: 8-byte length, the JSON text as given, then the buffer.</summary>
    private static byte[] HandBuilt(string json, byte[] buffer)
    {
        byte[] header = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + buffer.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        buffer.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }

    [TestMethod]
    public void Hand_built_file_with_f32_f16_and_bf16_reads_values_shapes_and_metadata()
    {
        var buffer = new byte[4 * 4 + 2 * 3 + 2 * 2];
        float[] f32 = [1.5f, -2f, 0.25f, 1e-3f];
        for (int i = 0; i < 4; i++) BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(4 * i), f32[i]);
        Half[] f16 = [(Half)0.5f, (Half)(-3f), (Half)65504f];
        for (int i = 0; i < 3; i++) BinaryPrimitives.WriteHalfLittleEndian(buffer.AsSpan(16 + 2 * i), f16[i]);
        // bf16 = upper 16 bits of the float32: 1.0 = 0x3F80, -0.5 = 0xBF00.
        BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(22), 0x3F80);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(24), 0xBF00);
        string json = """
            {"__metadata__":{"format":"pt"},
             "b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},
             "a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},
             "c":{"dtype":"BF16","shape":[1,2],"data_offsets":[22,26]}}
            """;

        var (tensors, metadata) = SafeTensors.Parse(HandBuilt(json, buffer), "hand.safetensors");
        Assert.AreEqual("pt", metadata["format"]);
        CollectionAssert.AreEqual(new long[] { 2, 2 }, tensors["a"].Shape);
        CollectionAssert.AreEqual(f32, tensors["a"].ToFloat32());
        CollectionAssert.AreEqual(new[] { 0.5f, -3f, 65504f }, tensors["b"].ToFloat32());
        CollectionAssert.AreEqual(new[] { 1f, -0.5f }, tensors["c"].ToFloat32());
        Assert.AreEqual(SafeTensorDType.BF16, tensors["c"].DType);
    }

    [TestMethod]
    public void Written_file_reads_back_and_its_data_starts_8_byte_aligned()
    {
        using var folder = new TempFolder();
        string path = folder.File("w.safetensors");
        var weight = SafeTensor.FromFloat32("layer.weight", [2, 3], [1, 2, 3, 4, 5, 6]);
        var count = SafeTensor.FromInt64("bn.num_batches_tracked", [], [42]);
        SafeTensors.Write(path, [weight, count], new Dictionary<string, string> { ["who"] = "test" });

        byte[] bytes = File.ReadAllBytes(path);
        Assert.AreEqual(0UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes) % 8);
        var read = SafeTensors.Read(path);
        CollectionAssert.AreEqual(new[] { 1f, 2, 3, 4, 5, 6 }, read["layer.weight"].ToFloat32());
        CollectionAssert.AreEqual(new long[] { 42 }, read["bn.num_batches_tracked"].ToInt64());
        Assert.IsEmpty(read["bn.num_batches_tracked"].Shape);
        Assert.AreEqual("test", SafeTensors.Parse(bytes).Metadata["who"]);
    }

    [TestMethod]
    [DataRow("""{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", 8, "needs 8 bytes")]
    [DataRow("""{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "leaving a gap")]
    [DataRow("""{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"u":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 4, "overlaps")]
    [DataRow("""{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 12, "cover 4 bytes but the data buffer holds 12")]
    [DataRow("""{"t":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}""", 1, "dtype 'I8'")]
    [DataRow("""{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}""", 4, "begin ≤ end")]
    [DataRow("""{"t": [1, 2""", 4, "not valid JSON")]
    public void Bad_offsets_dtypes_and_headers_are_rejected_naming_the_file(string json, int bufferBytes, string expected)
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(() => SafeTensors.Parse(HandBuilt(json, new byte[bufferBytes]), "bad.safetensors"));
        StringAssert.Contains(e.Message, "'bad.safetensors'");
        StringAssert.Contains(e.Message, expected);
    }

    [TestMethod]
    public void Header_length_beyond_the_file_is_reported()
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => SafeTensors.Parse(bytes, "short.safetensors"));
        StringAssert.Contains(e.Message, "declares 1000 bytes");
        Assert.ThrowsExactly<FileNotFoundException>(() => SafeTensors.Read(Path.Combine(Path.GetTempPath(), "no-such-file.safetensors")));
    }
}
