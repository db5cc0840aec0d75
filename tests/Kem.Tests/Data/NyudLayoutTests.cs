using Microsoft.ML.Kem.Data;

namespace Kem.Tests.Data;

[TestClass]
public sealed class NyudLayoutTests
{
    private static readonly SceneGenerator Generator = new(new SceneOptions { Seed = 4, Width = 32, Height = 32 });

    private static string TrainList(string root) => Path.Combine(root, "gt_sets", "train.txt");

    [TestMethod]
    public void Written_dataset_reads_back_with_the_same_labels()
    {
        using var folder = new TempFolder();
        NyudLayoutSummary summary = NyudLayoutWriter.Write(folder.Path, Generator, trainCount: 3, valCount: 1);
        CollectionAssert.AreEqual(new[] { "000000", "000001", "000002" }, summary.TrainIds.ToArray());
        CollectionAssert.AreEqual(new[] { "000003" }, summary.ValIds.ToArray());

        var reader = new NyudLayoutReader(folder.Path);
        CollectionAssert.AreEqual(summary.TrainIds.ToArray(), reader.ReadSplit("train").ToArray());
        CollectionAssert.AreEqual(summary.ValIds.ToArray(), reader.ReadSplit("val").ToArray());
        foreach (var (split, id, index) in new[] { ("train", "000000", 0), ("train", "000002", 2), ("val", "000003", 3) })
        {
            SceneSample expected = Generator.Generate(index);
            NyudSample read = reader.Read(split, id);
            Assert.AreEqual(id, read.Id);
            Assert.AreEqual(32, read.Width);
            Assert.AreEqual(32, read.Height);
            CollectionAssert.AreEqual(expected.Rgb, read.Rgb);
            CollectionAssert.AreEqual(expected.Segmentation, read.Segmentation);
            CollectionAssert.AreEqual(expected.Depth, read.Depth);
            CollectionAssert.AreEqual(expected.Normals, read.Normals);
            CollectionAssert.AreEqual(expected.Boundaries, read.Edges);
            CollectionAssert.AreEqual(expected.Saliency, read.Saliency);
            CollectionAssert.AreEqual(expected.Parts, read.Parts);
        }
        Assert.IsEmpty(Directory.GetFiles(folder.Path, "*.tmp", SearchOption.AllDirectories));
    }

    [TestMethod]
    public void Files_follow_the_nyud_conventions_on_disk()
    {
        using var folder = new TempFolder();
        SceneSample sample = Generator.Generate(7);
        NyudLayoutWriter.WriteSample(folder.Path, "000007", sample);

        // Segmentation: class c stored as c + 1 (0 is void).
        byte[] raw = PngCodec.ReadLabelIndices(Path.Combine(folder.Path, "segmentation", "000007.png")).Values;
        CollectionAssert.AreEqual(sample.Segmentation.Select(c => (byte)(c + 1)).ToArray(), raw);
        // Normals: channels last in the file.
        NpyArray normals = NpyFile.Read(Path.Combine(folder.Path, "normals", "000007.npy"));
        CollectionAssert.AreEqual(new[] { 32, 32, 3 }, normals.Shape);
        int pixel = 5 * 32 + 9;
        for (int c = 0; c < 3; c++)
            Assert.AreEqual(sample.Normals[c * 32 * 32 + pixel], normals.Data[3 * pixel + c]);
        CollectionAssert.AreEqual(new[] { 32, 32 }, NpyFile.Read(Path.Combine(folder.Path, "depth", "000007.npy")).Shape);
        // Saliency: 0 / 255.
        byte[] saliency = PngCodec.ReadLabelIndices(Path.Combine(folder.Path, "saliency", "000007.png")).Values;
        CollectionAssert.AreEqual(sample.Saliency.Select(v => (byte)(v * 255)).ToArray(), saliency);
    }

    [TestMethod]
    public void Void_segmentation_reads_as_ignore_and_missing_depth_stays_zero()
    {
        using var folder = new TempFolder();
        NyudLayoutWriter.WriteSample(folder.Path, "000000", Generator.Generate(0));
        var raw = new byte[32 * 32];
        raw[0] = 0;  // void
        raw[1] = 1;  // class 0
        raw[2] = 40; // class 39
        PngCodec.WriteGray8(Path.Combine(folder.Path, "segmentation", "000000.png"), raw, 32, 32);
        var depth = new float[32 * 32];
        depth[1] = 2.5f;
        NpyFile.Write(Path.Combine(folder.Path, "depth", "000000.npy"), [32, 32], depth);

        NyudSample read = new NyudLayoutReader(folder.Path).Read("train", "000000");
        CollectionAssert.AreEqual(new[] { 255f, 0f, 39f }, read.Segmentation[..3]);
        CollectionAssert.AreEqual(new[] { 0f, 2.5f, 0f }, read.Depth[..3]);
    }

    [TestMethod]
    public void Missing_label_file_error_names_the_file_and_the_split_list()
    {
        using var folder = new TempFolder();
        NyudLayoutWriter.Write(folder.Path, Generator, trainCount: 2, valCount: 0);
        string depthPath = Path.Combine(folder.Path, "depth", "000001.npy");
        File.Delete(depthPath);

        var error = Assert.ThrowsExactly<FileNotFoundException>(() => new NyudLayoutReader(folder.Path).Read("train", "000001"));
        Assert.AreEqual(depthPath, error.FileName);
        Assert.Contains(depthPath, error.Message);
        Assert.Contains(TrainList(folder.Path), error.Message);
    }

    [TestMethod]
    public void Missing_split_list_error_names_the_file()
    {
        using var folder = new TempFolder();
        var error = Assert.ThrowsExactly<FileNotFoundException>(() => new NyudLayoutReader(folder.Path).ReadSplit("train"));
        Assert.Contains(TrainList(folder.Path), error.Message);
    }

    [TestMethod]
    public void Optional_task_without_a_folder_reads_as_null()
    {
        using var folder = new TempFolder();
        NyudLayoutWriter.WriteSample(folder.Path, "000000", Generator.Generate(0));
        Directory.Delete(Path.Combine(folder.Path, "normals"), recursive: true);
        Directory.Delete(Path.Combine(folder.Path, "parts"), recursive: true);

        NyudSample read = new NyudLayoutReader(folder.Path).Read("train", "000000");
        Assert.IsNull(read.Normals);
        Assert.IsNull(read.Parts);
        Assert.IsNotNull(read.Edges);
    }

    [TestMethod]
    public void Label_of_the_wrong_size_error_names_the_file()
    {
        using var folder = new TempFolder();
        NyudLayoutWriter.WriteSample(folder.Path, "000000", Generator.Generate(0));
        string edgePath = Path.Combine(folder.Path, "edge", "000000.npy");
        NpyFile.Write(edgePath, [16, 32], new float[16 * 32]);

        var error = Assert.ThrowsExactly<InvalidDataException>(() => new NyudLayoutReader(folder.Path).Read("train", "000000"));
        Assert.Contains(edgePath, error.Message);
    }
}
