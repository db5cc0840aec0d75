using Kem.Tests.Data;
using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Training;
using SkiaSharp;

namespace Kem.Tests.Trainers;

[TestClass]
public sealed class DatasetReaderTests
{
    private static readonly SceneGenerator Generator = new(new SceneOptions { Seed = 9, Width = 24, Height = 16 });
    private static readonly NyudTask[] AllNyud = [NyudTask.Segmentation, NyudTask.Depth, NyudTask.Normals, NyudTask.Edges];
    private static readonly PascalContextTask[] AllPascal =
        [PascalContextTask.Segmentation, PascalContextTask.HumanParts, PascalContextTask.Saliency, PascalContextTask.Normals, PascalContextTask.Edges];

    /// <summary>Every row's values of <paramref name="column"/>, read through a cursor (as a trainer reads them).</summary>
    private static List<float[]> Column(IDataView view, string column)
    {
        var rows = new List<float[]>();
        var col = view.Schema[column];
        using var cursor = view.GetRowCursor([col]);
        var getter = cursor.GetGetter<VBuffer<float>>(col);
        VBuffer<float> buffer = default;
        while (cursor.MoveNext())
        {
            getter(ref buffer);
            rows.Add(buffer.DenseValues().ToArray());
        }
        return rows;
    }

    private static float[] Planes(byte[] rgb, int pixels)
    {
        var planes = new float[3 * pixels];
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < 3; c++) planes[c * pixels + i] = rgb[3 * i + c];
        return planes;
    }

    // ------------------------------------------------------------------ NYUD

    [TestMethod]
    public void Nyud_view_at_stored_size_holds_the_written_image_and_labels()
    {
        using var folder = new TempFolder();
        NyudLayoutWriter.Write(folder.Path, Generator, trainCount: 3, valCount: 1);
        var ml = new MLContext(seed: 1);
        var view = ml.MultiTask().Data.LoadNyud(folder.Path, "train", 16, 24, AllNyud, segmentationClasses: SceneGenerator.ClassCount);

        Assert.AreEqual(3L, view.GetRowCount());
        CollectionAssert.AreEqual(new[] { "Id", "Image", "Segmentation", "Depth", "Normals", "Edges" }, view.Schema.Select(c => c.Name).ToArray());
        CollectionAssert.AreEqual(new[] { 3, 16, 24 }, ((VectorDataViewType)view.Schema["Normals"].Type).Dimensions.ToArray());
        var images = Column(view, "Image");
        var seg = Column(view, "Segmentation");
        var depth = Column(view, "Depth");
        var normals = Column(view, "Normals");
        var edges = Column(view, "Edges");
        for (int i = 0; i < 3; i++)
        {
            SceneSample s = Generator.Generate(i);
            CollectionAssert.AreEqual(Planes(s.Rgb, 16 * 24), images[i], $"image {i}");
            CollectionAssert.AreEqual(s.Segmentation, seg[i], $"segmentation {i}: stored c + 1, read back as c");
            CollectionAssert.AreEqual(s.Depth, depth[i]);
            CollectionAssert.AreEqual(s.Normals, normals[i], "normals H×W×3 on disk, 3×H×W in the column");
            CollectionAssert.AreEqual(s.Boundaries, edges[i]);
        }
    }

    [TestMethod]
    public void Nyud_labels_are_resized_with_nearest_neighbour_and_the_view_plugs_into_the_trainer()
    {
        using var folder = new TempFolder();
        NyudLayoutWriter.Write(folder.Path, Generator, trainCount: 4, valCount: 1);
        var ml = new MLContext(seed: 1);
        var data = ml.MultiTask().Data;
        var view = data.LoadNyud(folder.Path, "train", 8, 12, segmentationClasses: SceneGenerator.ClassCount);
        CollectionAssert.AreEqual(new[] { "Id", "Image", "Segmentation", "Depth" }, view.Schema.Select(c => c.Name).ToArray(), "default tasks: the paper's two");

        var seg = Column(view, "Segmentation")[1];
        SceneSample s = Generator.Generate(1);
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 12; x++)
                Assert.AreEqual(s.Segmentation[2 * y * 24 + 2 * x], seg[y * 12 + x], $"({y},{x}) takes source pixel (2y, 2x)");
        float[] image = Column(view, "Image")[1];
        Assert.IsTrue(image.Any(v => v != MathF.Round(v)), "the image is interpolated, not sampled");

        var tasks = data.NyudTasks(segmentationClasses: SceneGenerator.ClassCount);
        Assert.AreEqual(1f, tasks[1].Task.LossWeight);
        DenseDataset dataset = data.ToDenseDataset(view, tasks);
        Assert.AreEqual(4, dataset.Count);
        var trainer = ml.MultiTask().Trainers.Kem(new MultiTaskKemTrainer.Options
        {
            Tasks = tasks.ToList(), Backbone = BackboneKind.TinyViT, TokenStride = 4, Width = 16, Heads = 2, BackboneDepth = 1, EncoderDepth = 1, DecoderDepth = 1,
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 2, TopK = 2 },
            Training = new TrainingOptions { Epochs = 1, BatchSize = 2, WarmupSteps = 0, Device = ComputeDevice.Cpu },
        });
        var model = trainer.Fit(view);
        Assert.IsNotNull(model.TrainingResult, "a fitted model carries its training result");
        Assert.AreEqual(2, model.TrainingResult.Steps);
    }

    [TestMethod]
    public void Nyud_missing_corrupt_and_misshaped_files_fail_naming_the_file()
    {
        using var folder = new TempFolder();
        NyudLayoutWriter.Write(folder.Path, Generator, trainCount: 2, valCount: 0);
        var data = new MLContext().MultiTask().Data;
        string File(string f, string id, string ext) => Path.Combine(folder.Path, f, id + ext);

        System.IO.File.Delete(File("depth", "000001", ".npy"));
        var missing = Assert.ThrowsExactly<FileNotFoundException>(() => data.LoadNyud(folder.Path, "train", 16, 24, segmentationClasses: 8));
        StringAssert.Contains(missing.Message, File("depth", "000001", ".npy"));
        StringAssert.Contains(missing.Message, "split 'train'");
        var noSplit = Assert.ThrowsExactly<FileNotFoundException>(() => data.LoadNyud(folder.Path, "test", 16, 24));
        StringAssert.Contains(noSplit.Message, "test.txt");

        NpyFile.Write(File("depth", "000001", ".npy"), [16, 24, 2], new float[16 * 24 * 2]);
        var view = data.LoadNyud(folder.Path, "train", 16, 24, segmentationClasses: 8);
        var shape = Assert.ThrowsExactly<InvalidDataException>(() => Column(view, "Depth"));
        StringAssert.Contains(shape.Message, File("depth", "000001", ".npy"));

        NpyFile.Write(File("depth", "000001", ".npy"), [8, 12], new float[8 * 12]);
        var size = Assert.ThrowsExactly<InvalidDataException>(() => Column(view, "Depth"));
        StringAssert.Contains(size.Message, "8×12");
        StringAssert.Contains(size.Message, File("images", "000001", ".png"));

        byte[] npy = System.IO.File.ReadAllBytes(File("depth", "000000", ".npy"));
        byte[] complex = System.Text.Encoding.ASCII.GetBytes("<c8");
        int at = System.Text.Encoding.ASCII.GetString(npy).IndexOf("<f4", StringComparison.Ordinal);
        complex.CopyTo(npy, at);
        System.IO.File.WriteAllBytes(File("depth", "000000", ".npy"), npy);
        var dtype = Assert.ThrowsExactly<InvalidDataException>(() => Column(view, "Depth"));
        StringAssert.Contains(dtype.Message, File("depth", "000000", ".npy"));
        StringAssert.Contains(dtype.Message, "<c8");

        PngCodec.WriteRgb(File("segmentation", "000000", ".png"), new byte[3 * 16 * 24], 24, 16);
        var rgb = Assert.ThrowsExactly<InvalidDataException>(() => Column(view, "Segmentation"));
        StringAssert.Contains(rgb.Message, File("segmentation", "000000", ".png"));

        var outOfRange = Enumerable.Repeat((byte)45, 16 * 24).ToArray(); // class 44 of a 40-class dataset
        PngCodec.WriteGray8(File("segmentation", "000000", ".png"), outOfRange, 24, 16);
        var range = Assert.ThrowsExactly<InvalidDataException>(() => Column(data.LoadNyud(folder.Path, "train", 16, 24), "Segmentation"));
        StringAssert.Contains(range.Message, File("segmentation", "000000", ".png"));
        StringAssert.Contains(range.Message, "0..39");

        byte[] png = System.IO.File.ReadAllBytes(File("images", "000000", ".png"));
        System.IO.File.WriteAllBytes(File("images", "000000", ".png"), png[..(png.Length / 2)]);
        var corrupt = Assert.ThrowsExactly<InvalidDataException>(() => Column(view, "Image"));
        StringAssert.Contains(corrupt.Message, File("images", "000000", ".png"));
    }

    // ------------------------------------------------------------------ PASCAL-Context

    private const int PH = 12, PW = 16;

    private static void WriteJpeg(string path, Func<int, int, (byte R, byte G, byte B)> colour)
    {
        var info = new SKImageInfo(PW, PH, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        for (int y = 0; y < PH; y++)
            for (int x = 0; x < PW; x++)
            {
                var (r, g, b) = colour(y, x);
                bitmap.SetPixel(x, y, new SKColor(r, g, b));
            }
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Jpeg, 100);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, encoded.ToArray());
    }

    private static (byte R, byte G, byte B) Gradient(int y, int x) => ((byte)(40 + 10 * x), (byte)(60 + 8 * y), 128);

    /// <summary>Two images in the PASCAL_MT layout: 'a' with a person (semseg in VOC12), 'b' without (semseg in pascal-context).</summary>
    private static string WritePascal(TempFolder folder)
    {
        string root = folder.Path;
        string P(string sub, string id, string ext)
        {
            string path = Path.Combine(root, sub, id + ext);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            return path;
        }
        foreach (string id in new[] { "a", "b" })
        {
            WriteJpeg(P("JPEGImages", id, ".jpg"), Gradient);
            var seg = new byte[PH * PW];
            for (int i = 0; i < seg.Length; i++) seg[i] = (byte)(i % PW < 8 ? 15 : 0);
            seg[0] = 255;
            PngCodec.WriteIndexed(P(id == "a" ? "semseg/VOC12" : "semseg/pascal-context", id, ".png"), seg, PW, PH);
            var sal = new byte[PH * PW];
            for (int i = 0; i < sal.Length; i++) sal[i] = (byte)(i % PW < 8 ? 200 : 100);
            PngCodec.WriteGray8(P("sal_distill", id, ".png"), sal, PW, PH);
            var normals = new byte[3 * PH * PW];
            for (int i = 0; i < PH * PW; i++) (normals[3 * i], normals[3 * i + 1], normals[3 * i + 2]) = ((byte)0, (byte)255, (byte)51);
            PngCodec.WriteRgb(P("normals_distill", id, ".png"), normals, PW, PH);
            // LabelMap: class 7 on the left half, 30 on the right (MATLAB column-major, stored as uint16).
            var labelMap = new double[PH * PW];
            for (int c = 0; c < PW; c++)
                for (int r = 0; r < PH; r++) labelMap[c * PH + r] = c < 8 ? 7 : 30;
            File.WriteAllBytes(P("pascal-context/trainval", id, ".mat"),
                MatV5Writer.File(true, ("LabelMap", new MatV5Writer.Numeric([PH, PW], labelMap, ClassCode: 11, StoredType: 4))));
        }
        bool[] Mask(Func<int, int, bool> on) => Enumerable.Range(0, PH * PW).Select(i => on(i / PW, i % PW)).ToArray();
        File.WriteAllBytes(P("human_parts", "a", ".mat"), MatV5Writer.PartsAnnotation("a", PH, PW, true,
            ("person", 15, Mask((r, c) => c < 8), [("head", Mask((r, c) => c < 8 && r < 4)), ("llleg", Mask((r, c) => c < 8 && r >= 8))])));
        File.WriteAllBytes(P("human_parts", "b", ".mat"), MatV5Writer.PartsAnnotation("b", PH, PW, true,
            ("cat", 8, Mask((r, c) => c >= 8), [])));
        Directory.CreateDirectory(Path.Combine(root, "ImageSets", "Context"));
        File.WriteAllText(Path.Combine(root, "ImageSets", "Context", "train.txt"), "a\nb\n");
        return root;
    }

    [TestMethod]
    public void Pascal_view_decodes_jpeg_and_applies_every_label_convention()
    {
        using var folder = new TempFolder();
        string root = WritePascal(folder);
        var data = new MLContext().MultiTask().Data;
        var view = data.LoadPascalContext(root, "train", PH, PW, AllPascal);
        CollectionAssert.AreEqual(new[] { "Id", "Image", "Segmentation", "HumanParts", "Saliency", "Normals", "Edges" }, view.Schema.Select(c => c.Name).ToArray());
        CollectionAssert.AreEqual(new[] { 1f, 2f, 30f }, data.PascalContextTasks().Select(t => t.Task.LossWeight).ToArray(), "semseg, parts, saliency weights (MODEL-SPEC §8)");

        float[] image = Column(view, "Image")[0];
        double error = 0;
        for (int y = 0; y < PH; y++)
            for (int x = 0; x < PW; x++)
            {
                var (r, g, b) = Gradient(y, x);
                error += Math.Abs(image[y * PW + x] - r) + Math.Abs(image[PH * PW + y * PW + x] - g) + Math.Abs(image[2 * PH * PW + y * PW + x] - b);
            }
        Assert.IsLessThan(3.0, error / (3 * PH * PW), "JPEG decoded to RGB planes, close to the encoded colours");

        var seg = Column(view, "Segmentation");
        Assert.AreEqual(255f, seg[0][0]);
        Assert.AreEqual(15f, seg[0][1]);
        Assert.AreEqual(0f, seg[1][PW - 1], "'b' comes from semseg/pascal-context");

        var parts = Column(view, "HumanParts");
        Assert.AreEqual(1f, parts[0][0], "head");
        Assert.AreEqual(0f, parts[0][5 * PW + 2], "person pixel without a part: background");
        Assert.AreEqual(6f, parts[0][10 * PW + 1], "lower leg");
        Assert.AreEqual(0f, parts[0][PW - 1], "not a person: background");
        Assert.IsTrue(parts[1].All(v => v == 255f), "no person parts: all ignored");

        var sal = Column(view, "Saliency")[0];
        Assert.AreEqual(1f, sal[0]);
        Assert.AreEqual(0f, sal[PW - 1]);

        var normals = Column(view, "Normals")[0];
        Assert.AreEqual(-1f, normals[0], 1e-6f);
        Assert.AreEqual(1f, normals[PH * PW], 1e-6f);
        Assert.AreEqual(2f * 51 / 255 - 1, normals[2 * PH * PW], 1e-6f);

        var edges = Column(view, "Edges")[0];
        for (int y = 0; y < PH; y++)
            for (int x = 0; x < PW; x++)
                if (x is not (7 or 8)) Assert.AreEqual(0f, edges[y * PW + x], $"edge only at the class boundary, not at ({y},{x})");
        Assert.IsGreaterThan(0f, edges.Sum());
    }

    [TestMethod]
    public void Pascal_normals_can_be_masked_to_valid_context_classes_and_errors_name_the_file()
    {
        using var folder = new TempFolder();
        string root = WritePascal(folder);
        var data = new MLContext().MultiTask().Data;
        var masked = Column(data.LoadPascalContext(root, "train", PH, PW, [PascalContextTask.Normals], normalsValidContextClasses: [7]), "Normals")[0];
        Assert.AreEqual(-1f, masked[0], 1e-6f, "class 7 is kept");
        Assert.AreEqual(255f, masked[PW - 1], "class 30 is ignored");

        File.WriteAllBytes(Path.Combine(root, "human_parts", "b.mat"), new byte[200]);
        var view = data.LoadPascalContext(root, "train", PH, PW);
        var bad = Assert.ThrowsExactly<InvalidDataException>(() => Column(view, "HumanParts"));
        StringAssert.Contains(bad.Message, Path.Combine(root, "human_parts", "b.mat"));

        byte[] jpeg = File.ReadAllBytes(Path.Combine(root, "JPEGImages", "a.jpg"));
        File.WriteAllBytes(Path.Combine(root, "JPEGImages", "a.jpg"), jpeg[..(jpeg.Length / 3)]);
        var corrupt = Assert.ThrowsExactly<InvalidDataException>(() => Column(view, "Image"));
        StringAssert.Contains(corrupt.Message, Path.Combine(root, "JPEGImages", "a.jpg"));

        File.Delete(Path.Combine(root, "sal_distill", "b.png"));
        var missing = Assert.ThrowsExactly<FileNotFoundException>(() => data.LoadPascalContext(root, "train", PH, PW));
        StringAssert.Contains(missing.Message, Path.Combine(root, "sal_distill", "b.png"));
    }
}
