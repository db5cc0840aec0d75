using System.Buffers.Binary;
using System.Text;
using Microsoft.ML.Kem.Data;

namespace Kem.Tests.Data;

[TestClass]
public sealed class NpyFileTests
{
    /// <summary>A version-1.0 .npy file with the given header dictionary (padded as numpy pads it) and raw body.</summary>
    private static byte[] HandBuilt(string dictionary, byte[] body, byte major = 1)
    {
        int preamble = major == 1 ? 10 : 12;
        int length = dictionary.Length + 1;
        length += (64 - (preamble + length) % 64) % 64;
        byte[] header = Encoding.ASCII.GetBytes(dictionary.PadRight(length - 1) + "\n");
        var lengthField = new byte[preamble - 8];
        if (major == 1)
            BinaryPrimitives.WriteUInt16LittleEndian(lengthField, (ushort)length);
        else
            BinaryPrimitives.WriteUInt32LittleEndian(lengthField, (uint)length);
        return [0x93, .. "NUMPY"u8, major, 0, .. lengthField, .. header, .. body];
    }

    [TestMethod]
    public void Float32_round_trip_keeps_shape_and_values()
    {
        using var folder = new TempFolder();
        string path = folder.File("depth.npy");
        int[] shape = [2, 3, 4];
        float[] data = Enumerable.Range(0, 24).Select(i => i * 0.25f - 3f).ToArray();
        data[5] = float.NaN;
        data[6] = float.Epsilon;
        NpyFile.Write(path, shape, data);

        NpyArray read = NpyFile.Read(path);
        CollectionAssert.AreEqual(shape, read.Shape);
        CollectionAssert.AreEqual(data, read.Data);
        CollectionAssert.AreEqual(new[] { path }, Directory.GetFiles(folder.Path), "no temporary file left behind");
    }

    [TestMethod]
    public void One_dimensional_shape_is_written_as_a_python_one_tuple_and_data_is_64_byte_aligned()
    {
        byte[] npy = NpyFile.Encode([5], [1, 2, 3, 4, 5]);
        int headerLength = BinaryPrimitives.ReadUInt16LittleEndian(npy.AsSpan(8));
        string header = Encoding.ASCII.GetString(npy, 10, headerLength);
        Assert.Contains("'shape': (5,)", header);
        Assert.Contains("'descr': '<f4'", header);
        Assert.AreEqual(0, (10 + headerLength) % 64);
        Assert.IsTrue(header.EndsWith('\n'));
        CollectionAssert.AreEqual(new[] { 5 }, NpyFile.Parse(npy).Shape);
    }

    [TestMethod]
    public void Hand_built_float64_file_is_converted_to_float32()
    {
        double[] values = [1.5, -2.25, 1e-3, 6.5535];
        byte[] body = new byte[8 * values.Length];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteDoubleLittleEndian(body.AsSpan(8 * i), values[i]);
        NpyArray array = NpyFile.Parse(HandBuilt("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", body));
        CollectionAssert.AreEqual(new[] { 2, 2 }, array.Shape);
        CollectionAssert.AreEqual(values.Select(v => (float)v).ToArray(), array.Data);
    }

    [TestMethod]
    public void Hand_built_uint8_file_reads_each_byte_as_its_value()
    {
        NpyArray array = NpyFile.Parse(HandBuilt("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", [0, 7, 255]));
        CollectionAssert.AreEqual(new float[] { 0, 7, 255 }, array.Data);
    }

    [TestMethod]
    public void Version_2_header_and_int64_data_are_read()
    {
        byte[] body = new byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(body, -4);
        BinaryPrimitives.WriteInt64LittleEndian(body.AsSpan(8), 40_000);
        NpyArray array = NpyFile.Parse(HandBuilt("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", body, major: 2));
        CollectionAssert.AreEqual(new float[] { -4, 40_000 }, array.Data);
    }

    [TestMethod]
    public void Bad_magic_error_names_the_file()
    {
        using var folder = new TempFolder();
        string path = folder.File("normals.npy");
        File.WriteAllBytes(path, "PK\x03\x04 not numpy"u8.ToArray());
        var error = Assert.ThrowsExactly<InvalidDataException>(() => NpyFile.Read(path));
        Assert.Contains(path, error.Message);
    }

    [TestMethod]
    public void Unsupported_dtype_error_names_the_file_and_the_dtype()
    {
        using var folder = new TempFolder();
        string path = folder.File("big-endian.npy");
        File.WriteAllBytes(path, HandBuilt("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", [0, 0, 0, 0]));
        var error = Assert.ThrowsExactly<InvalidDataException>(() => NpyFile.Read(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("'>f4'", error.Message);
    }

    [TestMethod]
    public void Truncated_data_error_names_the_file()
    {
        using var folder = new TempFolder();
        string path = folder.File("edge.npy");
        byte[] npy = NpyFile.Encode([4, 4], new float[16]);
        File.WriteAllBytes(path, npy[..^3]);
        var error = Assert.ThrowsExactly<InvalidDataException>(() => NpyFile.Read(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("truncated", error.Message);
    }

    [TestMethod]
    public void Fortran_order_is_refused_naming_the_file()
    {
        using var folder = new TempFolder();
        string path = folder.File("fortran.npy");
        File.WriteAllBytes(path, HandBuilt("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }", new byte[8]));
        var error = Assert.ThrowsExactly<NotSupportedException>(() => NpyFile.Read(path));
        Assert.Contains(path, error.Message);
    }

    [TestMethod]
    public void Shape_that_does_not_match_the_data_is_refused()
    {
        Assert.ThrowsExactly<ArgumentException>(() => NpyFile.Encode([2, 3], new float[5]));
    }
}
