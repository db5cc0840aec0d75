using System.Text;
using Microsoft.ML.Kem.Tasks;

namespace Kem.Experiments;

/// <summary>
/// The paper's Table 2 layout from our runs: per task the Δm metric (mean ± sample std over seeds) and Δm in percent against
/// the single-task reference M_s = the mean over seeds of our STL runs (MODEL-SPEC §9). Also CSV with every run.
/// </summary>
internal sealed class ComparisonReport(IReadOnlyList<TaskSpec> tasks, IReadOnlyList<RunResult> runs, IReadOnlyList<TaskMetrics> trivial)
{
    private readonly IReadOnlyList<TaskMetrics>? reference = Reference(tasks, runs);

    private static IReadOnlyList<TaskMetrics>? Reference(IReadOnlyList<TaskSpec> tasks, IReadOnlyList<RunResult> runs)
    {
        var stl = runs.Where(r => r.Method == Methods.Stl).ToArray();
        if (stl.Length == 0) return null;
        // Mean STL metric per task, carried in a metrics record of the task's kind (only Primary and LowerIsBetter are used).
        return tasks.Select(t => (TaskMetrics)new MeanMetric(t.Name, t.Kind, stl.Average(r => Metric(r, t.Name)), stl[0].Metrics.First(m => m.TaskName == t.Name).LowerIsBetter)).ToArray();
    }

    private sealed record MeanMetric(string Name, TaskKind TaskKind, double Value, bool Lower) : TaskMetrics(Name, TaskKind)
    {
        public override double Primary => Value;
        public override bool LowerIsBetter => Lower;
        public override IReadOnlyList<SecondaryMetric> Secondary => [];
    }

    private static double Metric(RunResult run, string task) => run.Metrics.First(m => m.TaskName == task).Primary;

    /// <summary>The secondary metrics reported per task (MODEL-SPEC §9: saliency maxF, depth log-RMSE and abs-rel, …), in the kind's order.</summary>
    private IEnumerable<(TaskSpec Task, SecondaryMetric Metric)> SecondaryColumns =>
        tasks.SelectMany(t => trivial.First(m => m.TaskName == t.Name).Secondary.Select(x => (t, x)));

    private static double SecondaryOf(IReadOnlyList<TaskMetrics> metrics, string task, string name) =>
        metrics.First(m => m.TaskName == task).Secondary.First(x => x.Name == name).Value;

    private static string Arrow(bool? lowerIsBetter) => lowerIsBetter switch { true => " ↓", false => " ↑", null => "" };

    private static string FormatSecondary(SecondaryMetric metric, double value) =>
        value.ToString(metric.Name is "AbsRel" or "LogRmse" or "OdsThreshold" ? "F4" : "F2");

    /// <summary>The CSV column of a secondary metric: its property name in snake case (LogRmse → log_rmse).</summary>
    public static string CsvName(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 && (!char.IsUpper(name[i - 1]) || i + 1 < name.Length && char.IsLower(name[i + 1]))
            ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    /// <summary>Δm (%) of one run against the STL mean, or null without STL runs.</summary>
    public double? DeltaMOf(IReadOnlyList<TaskMetrics> metrics) => reference is null ? null : DeltaM.Compute(metrics, reference);

    public static string Header(TaskSpec t) => t.Kind switch
    {
        TaskKind.SemanticSegmentation or TaskKind.Parts => $"{t.Name} mIoU % ↑",
        TaskKind.Depth => $"{t.Name} RMSE ↓",
        TaskKind.Saliency => $"{t.Name} maxIoU % ↑",
        TaskKind.Normals => $"{t.Name} mean angle ° ↓",
        _ => $"{t.Name} odsF ↑",
    };

    private static string Format(TaskKind kind, double value) => kind == TaskKind.Depth ? value.ToString("F4") : value.ToString("F2");

    private static string MeanStd(IReadOnlyList<double> values, Func<double, string> format, Func<double, string>? formatStd = null)
    {
        double mean = values.Average();
        if (values.Count < 2) return format(mean);
        double std = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
        return $"{format(mean)} ± {(formatStd ?? format)(std)}";
    }

    private static string Signed(double v) => (v >= 0 ? "+" : "") + v.ToString("F2");

    /// <summary>One table row for runs of the same configuration (one per seed).</summary>
    private string Row(string label, IReadOnlyList<RunResult> group, bool extras)
    {
        var cells = new List<string> { label };
        foreach (var t in tasks) cells.Add(MeanStd(group.Select(r => Metric(r, t.Name)).ToArray(), v => Format(t.Kind, v)));
        var deltas = group.Select(r => DeltaMOf(r.Metrics)).ToArray();
        cells.Add(deltas.All(d => d.HasValue) ? MeanStd(deltas.Select(d => d!.Value).ToArray(), Signed, v => v.ToString("F2")) : "—");
        if (extras)
        {
            cells.Add((group.Average(r => r.TrainableParameters) / 1e6).ToString("F2") + " M");
            cells.Add(group[0].Steps.ToString());
            cells.Add(group.Average(r => r.Elapsed.TotalSeconds).ToString("F0") + " s");
        }
        return "| " + string.Join(" | ", cells) + " |";
    }

    public string Markdown(ExperimentSettings s, Microsoft.ML.Kem.Modeling.MultiTaskNetworkOptions network, string data, string machine, string command, TimeSpan total,
        IReadOnlyList<(string Name, string Value, RunResult Run)> sweeps)
    {
        var md = new StringBuilder();
        md.AppendLine($"Seeds {string.Join(", ", s.Seeds)}; mean ± sample std over seeds. Δm against the mean of our STL runs (MODEL-SPEC §9); positive is better.");
        md.AppendLine();
        md.AppendLine("| Method | " + string.Join(" | ", tasks.Select(Header)) + " | Δm % ↑ | Trainable params | Steps | Train + eval time / run |");
        md.AppendLine("|---|" + string.Join("", tasks.Select(_ => "---|")) + "---|---|---|---|");
        var trivialCells = tasks.Select(t => Format(t.Kind, trivial.First(m => m.TaskName == t.Name).Primary));
        md.AppendLine("| Constant predictor (floor) | " + string.Join(" | ", trivialCells) + " | " +
                      (DeltaMOf(trivial) is { } dt ? Signed(dt) : "—") + " | 0 | 0 | — |");
        foreach (string method in s.Methods)
            md.AppendLine(Row(Methods.Label(method), runs.Where(r => r.Method == method).ToArray(), extras: true));

        var secondary = SecondaryColumns.ToArray();
        if (secondary.Length > 0)
        {
            md.AppendLine();
            md.AppendLine("Secondary metrics (not in Δm), same runs; mean ± sample std over seeds.");
            md.AppendLine();
            md.AppendLine("| Method | " + string.Join(" | ", secondary.Select(c => $"{c.Task.Name} {c.Metric.Label}{Arrow(c.Metric.LowerIsBetter)}")) + " |");
            md.AppendLine("|---|" + string.Join("", secondary.Select(_ => "---|")));
            md.AppendLine("| Constant predictor (floor) | " + string.Join(" | ", secondary.Select(c => FormatSecondary(c.Metric, SecondaryOf(trivial, c.Task.Name, c.Metric.Name)))) + " |");
            foreach (string method in s.Methods)
            {
                var group = runs.Where(r => r.Method == method).ToArray();
                md.AppendLine($"| {Methods.Label(method)} | " + string.Join(" | ", secondary.Select(c =>
                    MeanStd(group.Select(r => SecondaryOf(r.Metrics, c.Task.Name, c.Metric.Name)).ToArray(), v => FormatSecondary(c.Metric, v)))) + " |");
            }
        }

        foreach (var name in sweeps.Select(x => x.Name).Distinct())
        {
            md.AppendLine();
            string what = name == "m" ? "memory slots m (paper Table 5)" : "top-k k (paper Table 7)";
            var fixedPart = name == "m" ? $"k = {network.Interaction.TopK}" : $"m = {network.Interaction.MemorySlots}";
            md.AppendLine($"Sweep over {what}: {Methods.Label(s.SweepMethod)}, {fixedPart}, seeds {string.Join(", ", (s.SweepSeeds ?? s.Seeds))}.");
            md.AppendLine();
            md.AppendLine($"| {name} | " + string.Join(" | ", tasks.Select(Header)) + " | Δm % ↑ |");
            md.AppendLine("|---|" + string.Join("", tasks.Select(_ => "---|")) + "---|");
            foreach (var value in sweeps.Where(x => x.Name == name).Select(x => x.Value).Distinct())
                md.AppendLine(Row(value, sweeps.Where(x => x.Name == name && x.Value == value).Select(x => x.Run).ToArray(), extras: false));
        }

        md.AppendLine();
        md.AppendLine($"- Data: {data}; {s.Height}×{s.Width} input; training augmentation {s.AugmentationName} (MODEL-SPEC §11).");
        md.AppendLine($"- Budget (every method, every seed): {s.Epochs} epochs, batch {s.Batch}, AdamW lr {s.LearningRate} with {s.Warmup} warm-up steps then poly 0.9, " +
                      "weight decay 1e-4, loss weighting MtformerUncertainty, fp32; final weights scored (no early stopping).");
        var n = network;
        var kem = n.Interaction;
        string preset = s.Preset == Microsoft.ML.Kem.Modeling.NetworkPreset.Custom ? "" : $"preset {s.Preset} (with the model flags given), ";
        md.AppendLine($"- Network: {preset}{n.Backbone} backbone (token stride {n.TokenStride}, d {n.Width}, {n.Heads} heads, {n.BackboneDepth} blocks), " +
                      $"{n.EncoderDepth} encoder + {n.DecoderDepth} decoder {n.TaskBlocks} blocks per task (hard sharing: 0 + 0), m {kem.MemorySlots}, k {kem.TopK}, sKEM ETF {kem.EtfMode}.");
        md.AppendLine($"- KEM settings (Kem and StableKem rows): top-k {kem.TopKMode} over {kem.TopKAxis}, memory update {kem.MemoryUpdate}" +
                      $"{(kem.MemoryMlp ? " + MLP" : "")}, {kem.KemBlocks} round(s), score scale {kem.ScoreScale}, ETF input projection {(kem.EtfInputProjection ? "on" : "off")}, " +
                      $"task embedding {(kem.TaskEmbedding ? "on" : "off")}.");
        md.AppendLine(kem.CrossAttentionForm == Microsoft.ML.Kem.Interaction.CrossAttentionForm.MtformerWindow
            ? $"- CrossAttention row: MTFormer's windowed form (MODEL-SPEC §4 MtformerWindow), {kem.CrossAttentionWindow}×{kem.CrossAttentionWindow} windows, two blocks per target task."
            : "- CrossAttention row: the global form (every token attends to all tokens of the other tasks).");
        if (s.Contrast) md.AppendLine("- Training of every multi-task row adds MTFormer's cross-task contrastive loss (MODEL-SPEC §7; weight 0.01, 128-d projections, 700 negatives, τ 0.07).");
        md.AppendLine(s.DepthEvalMaxMetres is { } cap
            ? $"- Evaluation: depth metrics drop ground truth ≥ {cap} m (DepthEvalMaxMetres), for every row including the constant predictor."
            : "- Evaluation: every valid depth pixel counts (no DepthEvalMaxMetres cap).");
        md.AppendLine(s.EvalOriginalSize
            ? "- Evaluation size: the val labels at their stored (original) size, every prediction resized to it (bilinear; classes from the resized logits; --eval-original-size)."
            : "- Evaluation size: the network's input size, labels resized with nearest neighbour (MODEL-SPEC §9 default).");
        md.AppendLine($"- Machine: {machine}. Total wall time {total:hh\\:mm\\:ss}.");
        int retried = runs.Concat(sweeps.Select(x => x.Run)).Distinct().Sum(r => r.Retries);
        if (retried > 0)
            md.AppendLine($"- {retried} network(s) were trained a second time after a transient TorchSharp native error (same seed, deterministic CPU run).");
        md.AppendLine($"- Command: `{command}`");
        return md.ToString();
    }

    public string Csv(IReadOnlyList<(string Name, string Value, RunResult Run)> sweeps)
    {
        // metric = the Δm metric; then one column per secondary metric name (empty for tasks of another kind)
        string[] secondaryNames = SecondaryColumns.Select(c => c.Metric.Name).Distinct().ToArray();
        string Secondary(TaskMetrics m) => string.Concat(secondaryNames.Select(n => "," + (m.Secondary.FirstOrDefault(x => x.Name == n)?.Value.ToString("R") ?? "")));
        var csv = new StringBuilder("table,method,sweep,sweep_value,seed,memory_slots,top_k,task,kind,metric,delta_m,trainable_parameters,steps,seconds" +
                                    string.Concat(secondaryNames.Select(n => "," + CsvName(n))) + "\n");
        void Add(string table, RunResult r, string sweep, string value)
        {
            double? dm = DeltaMOf(r.Metrics);
            foreach (var m in r.Metrics)
                csv.AppendLine(string.Join(',', table, r.Method, sweep, value, r.Seed, r.Interaction.MemorySlots, r.Interaction.TopK, m.TaskName, m.Kind,
                    m.Primary.ToString("R"), dm?.ToString("R") ?? "", r.TrainableParameters, r.Steps, r.Elapsed.TotalSeconds.ToString("F1")) + Secondary(m));
        }
        foreach (var r in runs) Add("main", r, "", "");
        foreach (var (name, value, run) in sweeps) Add("sweep", run, name, value);
        foreach (var m in trivial)
            csv.AppendLine(string.Join(',', "main", "Constant", "", "", "", "", "", m.TaskName, m.Kind, m.Primary.ToString("R"), DeltaMOf(trivial)?.ToString("R") ?? "", 0, 0, 0) + Secondary(m));
        return csv.ToString();
    }
}
