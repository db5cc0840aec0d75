using Microsoft.ML.Kem.Tasks;

namespace Kem.Tests.Tasks;

[TestClass]
public sealed class DeltaMTests
{
    static SegmentationMetrics Seg(string name, double miou) => new(name, TaskKind.SemanticSegmentation, miou, 0, []);
    static SaliencyMetrics Sal(double maxIoU) => new("Saliency", maxIoU, 0, 0);
    static DepthMetrics Dep(double rmse) => new("Depth", rmse, 0, 0, 0);

    static readonly TaskMetrics[] PascalSingle = [Seg("Segmentation", 71.17), Seg("Parts", 63.90) with { Kind = TaskKind.Parts }, Sal(66.71)];
    static readonly TaskMetrics[] NyudSingle = [Seg("Segmentation", 47.96), Dep(0.4972)];

    static TaskMetrics[] Pascal(double seg, double parts, double sal) =>
        [Seg("Segmentation", seg), Seg("Parts", parts) with { Kind = TaskKind.Parts }, Sal(sal)];

    [TestMethod]
    public void Pascal_KEM_row_gives_plus_2_24()
    {
        Assert.AreEqual(2.24, DeltaM.Compute(Pascal(73.60, 64.94, 67.82), PascalSingle), 0.01);
    }

    [TestMethod]
    public void Pascal_MTFormer_T_row_gives_plus_1_55()
    {
        Assert.AreEqual(1.55, DeltaM.Compute(Pascal(73.52, 64.26, 67.24), PascalSingle), 0.01);
    }

    [TestMethod]
    public void Nyud_rows_treat_depth_RMSE_as_lower_is_better()
    {
        Assert.AreEqual(2.89, DeltaM.Compute([Seg("Segmentation", 50.04), Dep(0.490)], NyudSingle), 0.01);
        Assert.AreEqual(4.07, DeltaM.Compute([Seg("Segmentation", 49.63), Dep(0.474)], NyudSingle), 0.01);
    }

    [TestMethod]
    public void Low_level_formula_signs_and_averages()
    {
        // +10 % on a higher-is-better metric, −20 % change on a lower-is-better one (an improvement of +20)
        Assert.AreEqual(15.0, DeltaM.Compute([(1.1, 1.0, false), (0.8, 1.0, true)]), 1e-9);
    }

    [TestMethod]
    public void Missing_reference_names_the_task()
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() => DeltaM.Compute(Pascal(70, 60, 60), NyudSingle));
        Assert.Contains("'Parts'", error.Message);
    }
}
