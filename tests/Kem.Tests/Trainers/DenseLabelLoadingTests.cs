using Kem.Tests.Data;
using Kem.Trainers;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Training;

namespace Kem.Tests.Trainers;

[TestClass]
public sealed class DenseLabelLoadingTests
{
    public sealed class FileRow
    {
        public string Path { get; set; } = "";
    }

    private static float[] Load(MLContext ml, IDataView view, string column)
    {
        using var cursor = view.GetRowCursor(view.Schema);
        Assert.IsTrue(cursor.MoveNext());
        VBuffer<float> v = default;
        cursor.GetGetter<VBuffer<float>>(view.Schema[column])(ref v);
        return v.DenseValues().ToArray();
    }

    [TestMethod]
    public void Palette_png_keeps_class_indices_and_nyud_encoding_shifts_void_to_ignore()
    {
        using var dir = new TempFolder();
        // 4×2 palette mask: raw 0 = void, 1..3 classes; resized 4×2 → 2×1 with nearest neighbour
        PngCodec.WriteIndexed(System.IO.Path.Combine(dir.Path, "m.png"), new byte[] { 0, 1, 2, 3, 3, 2, 1, 0 }, 4, 2);
        var ml = new MLContext(1);
        var files = ml.Data.LoadFromEnumerable(new[] { new FileRow { Path = "m.png" } });
        var raw = ml.MultiTask().Transforms.LoadDenseLabels("L", "Path", 2, 4, folder: dir.Path).Fit(files).Transform(files);
        CollectionAssert.AreEqual(new float[] { 0, 1, 2, 3, 3, 2, 1, 0 }, Load(ml, raw, "L"));
        var nyud = ml.MultiTask().Transforms.LoadDenseLabels("L", "Path", 1, 2, folder: dir.Path, encoding: DenseLabelEncoding.NyudSegmentation).Fit(files).Transform(files);
        CollectionAssert.AreEqual(new float[] { 255, 1 }, Load(ml, nyud, "L"), "nearest neighbour picks raw 0 (void → 255) and raw 2 (→ class 1)");
        var type = (VectorDataViewType)nyud.Schema["L"].Type;
        CollectionAssert.AreEqual(new[] { 1, 1, 2 }, type.Dimensions.ToArray());
    }

    [TestMethod]
    public void Sixteen_bit_png_and_npy_keep_full_precision_and_hwc_normals_become_planes()
    {
        using var dir = new TempFolder();
        PngCodec.WriteGray16(System.IO.Path.Combine(dir.Path, "d.png"), new ushort[] { 1000, 65535, 4321, 0 }, 2, 2);
        NpyFile.Write(System.IO.Path.Combine(dir.Path, "n.npy"), new[] { 1, 2, 3 }, new float[] { 1, 2, 3, 4, 5, 6 }); // H×W×C
        var ml = new MLContext(1);
        var depthFiles = ml.Data.LoadFromEnumerable(new[] { new FileRow { Path = "d.png" } });
        var depth = ml.MultiTask().Transforms.LoadDenseLabels("D", "Path", 2, 2, folder: dir.Path, encoding: DenseLabelEncoding.DepthMillimetres).Fit(depthFiles).Transform(depthFiles);
        CollectionAssert.AreEqual(new float[] { 1f, 65.535f, 4.321f, 0f }, Load(ml, depth, "D"));
        var normalFiles = ml.Data.LoadFromEnumerable(new[] { new FileRow { Path = "n.npy" } });
        var normals = ml.MultiTask().Transforms.LoadDenseLabels("N", "Path", 1, 2, planes: 3, folder: dir.Path).Fit(normalFiles).Transform(normalFiles);
        CollectionAssert.AreEqual(new float[] { 1, 4, 2, 5, 3, 6 }, Load(ml, normals, "N"));
    }

    [TestMethod]
    public void Missing_or_corrupt_files_name_the_file_and_the_column()
    {
        using var dir = new TempFolder();
        File.WriteAllBytes(System.IO.Path.Combine(dir.Path, "bad.png"), new byte[] { 137, 80, 78, 71, 13, 10, 26, 10, 0, 0 });
        var ml = new MLContext(1);
        var files = ml.Data.LoadFromEnumerable(new[] { new FileRow { Path = "nope.png" }, new FileRow { Path = "bad.png" } });
        var view = ml.MultiTask().Transforms.LoadDenseLabels("Seg", "Path", 2, 2, folder: dir.Path).Fit(files).Transform(files);
        using var cursor = view.GetRowCursor(view.Schema);
        var getter = cursor.GetGetter<VBuffer<float>>(view.Schema["Seg"]);
        VBuffer<float> v = default;
        cursor.MoveNext();
        var missing = Assert.Throws<Exception>(() => getter(ref v));
        StringAssert.Contains(missing.Message, "nope.png");
        StringAssert.Contains(missing.Message, "'Seg'");
        cursor.MoveNext();
        var corrupt = Assert.Throws<Exception>(() => getter(ref v));
        StringAssert.Contains(corrupt.Message, "bad.png");

        var numbers = ml.Data.LoadFromEnumerable(new[] { new { Path = 1f } });
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MultiTask().Transforms.LoadDenseLabels("Seg", "Path", 2, 2).Fit(numbers));
        StringAssert.Contains(e.Message, "must be text");
    }

    [TestMethod]
    public void Generated_scenes_view_is_deterministic_and_trains_through_the_trainer()
    {
        var ml = new MLContext(1);
        var a = ml.MultiTask().GenerateScenes(3, 32, 32, seed: 4);
        var b = ml.MultiTask().GenerateScenes(3, 32, 32, seed: 4);
        CollectionAssert.AreEqual(Load(ml, a, "Depth"), Load(ml, b, "Depth"));
        CollectionAssert.AreEqual(new[] { 3, 32, 32 }, ((VectorDataViewType)a.Schema["Image"].Type).Dimensions.ToArray());
        CollectionAssert.AreEqual(new[] { 3, 32, 32 }, ((VectorDataViewType)a.Schema["Normals"].Type).Dimensions.ToArray());

        var tasks = new[] { new TaskColumn(SceneData.Tasks["Saliency"]), new TaskColumn(SceneData.Tasks["Parts"]), new TaskColumn(SceneData.Tasks["Boundaries"]) };
        var model = ml.MultiTask().Trainers.Kem(new MultiTaskKemTrainer.Options
        {
            Tasks = tasks, Backbone = BackboneKind.ConvStem, Width = 32, Heads = 2, BackboneDepth = 1,
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4 },
            Training = new TrainingOptions { Epochs = 1, BatchSize = 4, Device = ComputeDevice.Cpu },
        }).Fit(ml.MultiTask().GenerateScenes(8, 32, 32, seed: 5));
        var metrics = ml.MultiTask().Evaluate(model.Transform(ml.MultiTask().GenerateScenes(4, 32, 32, seed: 5, firstIndex: 100)), tasks);
        Assert.HasCount(3, metrics.Tasks);
        Assert.IsTrue(metrics.Tasks.All(m => double.IsFinite(m.Primary)), "saliency, parts and boundary metrics all computed");
    }
}
