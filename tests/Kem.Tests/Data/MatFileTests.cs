using Microsoft.ML.Kem.Data;
using static Kem.Tests.Data.MatV5Writer;

namespace Kem.Tests.Data;

[TestClass]
public sealed class MatFileTests
{
    private static byte[] Sample(bool compress) => MatV5Writer.File(compress,
        ("x", new Numeric([2, 3], [1.5, -2, 3, 4, 5.25, 6], StoredType: 9)),
        ("compact", new Numeric([1, 4], [0, 1, 200, 255], ClassCode: 6, StoredType: 2)),
        ("flags", new Numeric([2, 2], [1, 0, 0, 1], ClassCode: 9, StoredType: 2, Logical: true)),
        ("name", new Chars("person")),
        ("s", new Struct([1, 2], ["a", "b"], [[new Chars("first"), new Empty()], [new Chars("second", Utf8: true), Scalar(7)]])),
        ("c", new Cell([1, 2], [new Chars("ok"), new Numeric([1, 1], [-3], ClassCode: 12, StoredType: 5)])));

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void Numeric_char_struct_and_cell_arrays_read_back_compressed_or_not(bool compress)
    {
        var v = MatFile.Parse(Sample(compress), "sample.mat");
        CollectionAssert.AreEquivalent(new[] { "x", "compact", "flags", "name", "s", "c" }, v.Keys.ToArray());

        var x = (MatNumericArray)v["x"];
        CollectionAssert.AreEqual(new[] { 2, 3 }, x.Dimensions);
        Assert.AreEqual(MatClass.Double, x.Class);
        CollectionAssert.AreEqual(new[] { 1.5, -2, 3, 4, 5.25, 6 }, x.ToDoubles(), "column-major as stored");
        CollectionAssert.AreEqual(new[] { 1.5, 3, 5.25, -2, 4, 6 }, x.ToRowMajor(), "rows of the MATLAB matrix");

        var compact = (MatNumericArray)v["compact"];
        Assert.AreEqual(MatClass.Double, compact.Class, "the class stays double when the data is stored as miUINT8");
        Assert.AreEqual(MatFile.DataType.UInt8, compact.Stored);
        CollectionAssert.AreEqual(new[] { 0.0, 1, 200, 255 }, compact.ToDoubles());
        Assert.IsTrue(((MatNumericArray)v["flags"]).IsLogical);
        Assert.AreEqual("person", ((MatCharArray)v["name"]).Text);

        var s = (MatStructArray)v["s"];
        CollectionAssert.AreEqual(new[] { "a", "b" }, s.FieldNames.ToArray());
        Assert.AreEqual(2, s.Count);
        Assert.AreEqual("first", ((MatCharArray)s.Field(0, "a")!).Text);
        Assert.AreEqual(0, s.Field(0, "b")!.Count, "[] reads as an empty array");
        Assert.AreEqual("second", ((MatCharArray)s.Field(1, "a")!).Text);
        Assert.AreEqual(7.0, ((MatNumericArray)s.Field(1, "b")!)[0]);
        Assert.IsNull(s.Field(0, "missing"));

        var c = (MatCellArray)v["c"];
        Assert.AreEqual("ok", ((MatCharArray)c.Cells[0]).Text);
        Assert.AreEqual(MatClass.Int32, ((MatNumericArray)c.Cells[1]).Class);
        Assert.AreEqual(-3.0, ((MatNumericArray)c.Cells[1])[0]);
    }

    [TestMethod]
    public void Truncated_and_foreign_files_are_rejected_naming_the_file()
    {
        byte[] good = Sample(compress: false);
        var truncated = Assert.ThrowsExactly<InvalidDataException>(() => MatFile.Parse(good[..(good.Length - 20)], "cut.mat"));
        StringAssert.Contains(truncated.Message, "'cut.mat'");
        StringAssert.Contains(truncated.Message, "remain");

        byte[] bigEndian = (byte[])good.Clone();
        (bigEndian[126], bigEndian[127]) = ((byte)'M', (byte)'I');
        StringAssert.Contains(Assert.ThrowsExactly<NotSupportedException>(() => MatFile.Parse(bigEndian, "be.mat")).Message, "big-endian");

        byte[] hdf5 = (byte[])good.Clone();
        "MATLAB 7.3 MAT-file"u8.CopyTo(hdf5);
        StringAssert.Contains(Assert.ThrowsExactly<NotSupportedException>(() => MatFile.Parse(hdf5, "v73.mat")).Message, "-v7");

        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => MatFile.Parse(new byte[50], "tiny.mat")).Message, "'tiny.mat'");

        byte[] zipped = Sample(compress: true);
        zipped[140] ^= 0xFF; // inside the first zlib stream
        var bad = Assert.Throws<InvalidDataException>(() => MatFile.Parse(zipped, "zip.mat"));
        StringAssert.Contains(bad.Message, "'zip.mat'");

        using var folder = new TempFolder();
        Assert.ThrowsExactly<FileNotFoundException>(() => MatFile.Read(folder.File("absent.mat")));
    }

    [TestMethod]
    public void Numeric_data_that_does_not_fill_the_dimensions_is_corrupt()
    {
        byte[] bytes = MatV5Writer.File(false, ("m", new Numeric([3, 3], [1, 2, 3, 4], StoredType: 9)));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => MatFile.Parse(bytes, "short.mat"));
        StringAssert.Contains(e.Message, "array 'm'");
        StringAssert.Contains(e.Message, "expected 72");
    }
}
