using Microsoft.ML.Kem.Data;

namespace Kem.Tests.Data;

[TestClass]
public sealed class PascalHumanPartsTests
{
    private const int H = 4, W = 5;

    /// <summary>A row-major mask with the given (row, col) pixels set.</summary>
    private static bool[] Pixels(params (int R, int C)[] on)
    {
        var mask = new bool[H * W];
        foreach (var (r, c) in on) mask[r * W + c] = true;
        return mask;
    }

    private static PixelMap<byte> Parse(byte[] mat) => PascalHumanParts.FromAnnotation(MatFile.Parse(mat, "2008_000001.mat"), "2008_000001.mat");

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void Person_parts_map_to_the_six_groups_and_other_objects_are_background(bool compress)
    {
        var person = Pixels((0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (3, 1));
        byte[] mat = MatV5Writer.PartsAnnotation("2008_000001", H, W, compress,
            ("chair", 9, Pixels((3, 4)), [("seat", Pixels((3, 4)))]),
            ("person", 15, person, [("hair", Pixels((0, 0))), ("nose", Pixels((0, 1))), ("torso", Pixels((1, 0), (1, 1))),
                                    ("luarm", Pixels((2, 1))), ("rfoot", Pixels((3, 1)))]),
            ("person", 15, Pixels((0, 4), (1, 4)), [("rlarm", Pixels((0, 4))), ("ruleg", Pixels((1, 4)))]));

        PixelMap<byte> map = Parse(mat);
        Assert.AreEqual(W, map.Width);
        Assert.AreEqual(H, map.Height);
        byte[] expected =
        [
            1, 1, 0, 0, 4,
            2, 2, 0, 0, 5,
            0, 3, 0, 0, 0,
            0, 6, 0, 0, 0,
        ];
        CollectionAssert.AreEqual(expected, map.Values);
    }

    [TestMethod]
    public void Images_without_annotated_person_parts_are_all_ignore()
    {
        byte[] personWithoutParts = MatV5Writer.PartsAnnotation("a", H, W, false, ("person", 15, Pixels((1, 1)), []));
        CollectionAssert.AreEqual(Enumerable.Repeat((byte)255, H * W).ToArray(), Parse(personWithoutParts).Values);
        byte[] onlyDog = MatV5Writer.PartsAnnotation("b", H, W, true, ("dog", 12, Pixels((1, 1)), [("head", Pixels((1, 1)))]));
        CollectionAssert.AreEqual(Enumerable.Repeat((byte)255, H * W).ToArray(), Parse(onlyDog).Values);
        PixelMap<byte> noObjects = Parse(MatV5Writer.PartsAnnotation("c", H, W, false));
        Assert.AreEqual(1, noObjects.Width * noObjects.Height);
        Assert.AreEqual((byte)255, noObjects.Values[0]);
    }

    [TestMethod]
    public void Unknown_part_names_and_missing_anno_name_the_file()
    {
        byte[] bad = MatV5Writer.PartsAnnotation("a", H, W, false, ("person", 15, Pixels((1, 1)), [("tail", Pixels((1, 1)))]));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Parse(bad));
        StringAssert.Contains(e.Message, "'2008_000001.mat'");
        StringAssert.Contains(e.Message, "anno.objects(1).parts(1).part_name 'tail'");

        byte[] noAnno = MatV5Writer.File(false, ("LabelMap", MatV5Writer.Scalar(1)));
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => Parse(noAnno)).Message, "'anno'");
    }

    [TestMethod]
    public void Edges_are_the_thinned_nonzero_laplacian_of_the_label_map()
    {
        const int h = 8, w = 8;
        var labels = new double[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                labels[y * w + x] = x < 4 ? 5 : 9;
        float[] edges = PascalContextLayout.EdgesFromLabelMap(labels, h, w);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (x is not (3 or 4)) Assert.AreEqual(0f, edges[y * w + x], $"no edge away from the boundary at ({y},{x})");
        for (int y = 2; y < h - 2; y++)
            Assert.AreEqual(1f, edges[y * w + 3] + edges[y * w + 4], $"row {y}: the two-pixel Laplacian band is thinned to one pixel");
        Assert.IsTrue(PascalContextLayout.EdgesFromLabelMap(new double[h * w], h, w).All(v => v == 0), "a uniform map has no edges");
    }
}
