using Kem.Experiments;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;

namespace Kem.Tests.Experiments;

/// <summary>The comparison report keeps the paper's Table 2 for the Δm metrics and adds the secondary metrics (MODEL-SPEC §9, §15.11).</summary>
[TestClass]
public sealed class ComparisonReportTests
{
    private static readonly TaskSpec[] Tasks = [TaskSpec.DepthTask(), TaskSpec.SaliencyTask()];

    private static RunResult Run(string method, int seed, double rmse, double maxF) => new(method, seed, new InteractionOptions(),
        [new DepthMetrics("Depth", rmse, AbsRel: 0.125, LogRmse: 0.25, Delta1: 80), new SaliencyMetrics("Saliency", 60, maxF, 70)], 1000, 10, TimeSpan.FromSeconds(1), 0);

    private static ComparisonReport Report() => new(Tasks,
        [Run(Methods.Stl, 1, 0.5, 70), Run(Methods.StableKem, 1, 0.4, 71), Run(Methods.StableKem, 2, 0.6, 73)],
        [new DepthMetrics("Depth", 1, 0.5, 0.75, 10), new SaliencyMetrics("Saliency", 30, 40, 50)]);

    [TestMethod]
    public void Csv_has_one_column_per_secondary_metric()
    {
        var lines = Report().Csv([]).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var header = lines[0].Split(',');
        CollectionAssert.IsSubsetOf(new[] { "abs_rel", "log_rmse", "delta1", "max_f", "max_f_beta03" }, header);
        var row = lines.Select(l => l.Split(',')).First(c => c[1] == Methods.StableKem && c[7] == "Saliency");
        Assert.AreEqual("71", row[Array.IndexOf(header, "max_f")]);
        Assert.AreEqual("", row[Array.IndexOf(header, "log_rmse")], "a saliency row has no depth metric");
        var depth = lines.Select(l => l.Split(',')).First(c => c[1] == "Constant" && c[7] == "Depth");
        Assert.AreEqual("0.75", depth[Array.IndexOf(header, "log_rmse")]);
    }

    [TestMethod]
    public void Markdown_prints_the_secondary_metrics_in_a_second_table()
    {
        var settings = ExperimentSettings.Parse(["--methods", "STL,StableKem", "--seeds", "1,2"]);
        var md = Report().Markdown(settings, settings.NetworkOptions(Tasks), "test data", "test machine", "cmd", TimeSpan.Zero, []);
        var tables = md.Split("\n\n").Where(b => b.TrimStart().StartsWith('|')).ToArray();
        Assert.HasCount(2, tables);
        Assert.DoesNotContain("maxF", tables[0], "Table 2 keeps the Δm metrics only");
        StringAssert.Contains(tables[1], "Saliency maxF % ↑");
        StringAssert.Contains(tables[1], "Depth log-RMSE ↓");
        StringAssert.Contains(tables[1], "Depth abs-rel ↓");
        StringAssert.Contains(tables[1], "72.00 ± 1.41", "sKEM maxF over seeds 71 and 73");
    }

    [TestMethod]
    public void Csv_names_are_snake_case()
    {
        Assert.AreEqual("max_f_beta03", ComparisonReport.CsvName("MaxFBeta03"));
        Assert.AreEqual("log_rmse", ComparisonReport.CsvName("LogRmse"));
        Assert.AreEqual("within11_25", ComparisonReport.CsvName("Within11_25"));
    }
}
