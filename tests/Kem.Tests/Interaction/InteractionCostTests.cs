using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Kem.Tests.Interaction.InteractionFixtures;

namespace Kem.Tests.Interaction;

[TestClass]
public sealed class InteractionCostTests
{
    [TestMethod]
    public void Kem_cost_grows_linearly_in_tokens_and_tasks()
    {
        var baseline = InteractionCost.Kem(2, 1008, 384, 20);
        Assert.AreEqual(2 * baseline.AttentionPart, InteractionCost.Kem(2, 2016, 384, 20).AttentionPart, "doubling n");
        Assert.AreEqual(2 * baseline.AttentionPart, InteractionCost.Kem(4, 1008, 384, 20).AttentionPart, "doubling T");
        Assert.AreEqual(4L * 2 * 1008 * 384 * 384, InteractionCost.Kem(2, 2016, 384, 20).Projections - baseline.Projections, "projections grow by 4·T·Δn·d²");
        var sparse = InteractionCost.Kem(2, 1008, 384, 20, keptPerSlot: 3);
        Assert.AreEqual(20L * (2 * 1008 - 3) * 384, baseline.AttentionPart - sparse.AttentionPart, "the kept-only retrieve sum: m·(N − k)·d fewer");
    }

    [TestMethod]
    public void Cross_attention_cost_grows_quadratically_in_tokens_and_tasks()
    {
        var baseline = InteractionCost.CrossAttention(2, 1008, 384);
        Assert.AreEqual(4 * baseline.AttentionPart, InteractionCost.CrossAttention(2, 2016, 384).AttentionPart, "doubling n");
        Assert.AreEqual(6 * baseline.AttentionPart, InteractionCost.CrossAttention(4, 1008, 384).AttentionPart, "T = 2 → 4: T(T−1) 2 → 12");
        Assert.AreEqual(4L * 2 * 1008 * 384 * 384, baseline.Projections, "the spec's 4·T·n·d² at T = 2");
    }

    [TestMethod]
    public void Costs_reproduce_the_spec_numbers()
    {
        // MODEL-SPEC §2: NYUD paper size (T=2, n=4800, d=256, m=20) and Gpu448 (T=2, n=1008, d=384, m=20).
        Assert.AreEqual(2.0e8, InteractionCost.Kem(2, 4800, 256, 20).AttentionPart, 0.05e8);
        Assert.AreEqual(2.4e10, InteractionCost.CrossAttention(2, 4800, 256).AttentionPart, 0.05e10);
        Assert.AreEqual(6.2e7, InteractionCost.Kem(2, 1008, 384, 20).AttentionPart, 0.05e7);
        Assert.AreEqual(1.56e9, InteractionCost.CrossAttention(2, 1008, 384).AttentionPart, 0.005e9);
        Assert.AreEqual(1.19e9, InteractionCost.CrossAttention(2, 1008, 384).Projections, 0.005e9);
        Assert.AreEqual(1.19e9, InteractionCost.Kem(2, 1008, 384, 20).Projections, 0.02e9);   // + 4·m·d² = 1.2e7
    }

    [TestMethod]
    [DataRow("Kem")]
    [DataRow("KemPerTask")]
    [DataRow("KemGated")]
    [DataRow("KemMemoryMlp")]
    [DataRow("KemSlotAxis")]
    [DataRow("KemBlocks2")]
    [DataRow("TaskVerticesBlocks3Gated")]
    public void Kem_cost_equals_the_products_the_module_runs_plus_the_folded_output_projection(string variant)
    {
        const int tasks = 3;
        var options = Options(variant);
        using var kem = Create(variant, tasks);
        var projections = new LinearCounter(kem);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        IReadOnlyList<KemTrace> traces = kem switch
        {
            KnowledgeExtraction one => [one.Trace(Tokens(tasks: tasks, batch: 1))],
            KemRounds rounds => rounds.Trace(Tokens(tasks: tasks, batch: 1)),
            _ => throw new AssertFailedException($"{variant} is not KEM"),
        };
        Assert.AreEqual(options.KemBlocks, traces.Count, "rounds");

        // Attention part from the shapes the module produced: S (B×h×m×N ·d_h), the retrieve sum (over the kept entries of
        // A, the algorithm's count, or all of A for TopKAxis.Slots, whose weights are dense), Write scores and sum
        // (B×h×N×m ·d_h each).
        var headWidth = Width / Heads;
        long attention = 0;
        foreach (var trace in traces)
        {
            var kept = trace.RetrieveWeights.ne(0).sum().item<long>();
            var summed = options.TopKAxis == TopKAxis.Slots ? trace.RetrieveWeights.numel() : kept;
            if (options.TopKAxis == TopKAxis.Tokens)
                Assert.AreEqual(Slots * Heads * (long)TopK * (options.TopKScope == TopKScope.PerTask ? tasks : 1), kept, "every slot of every head keeps k (k·T) tokens");
            attention += trace.RetrieveWeights.numel() * headWidth + summed * headWidth + 2 * trace.WriteWeights.numel() * headWidth;
        }
        var expected = InteractionCost.Kem(tasks, PerTask, Width, options);
        Assert.AreEqual(expected.AttentionPart, attention, "attention part");
        // The module runs every projection as a Linear module except the Write's output projection Wo_w (N·d² in the spec's
        // count), which it applies to the h·m slot value rows instead of the N tokens (AttentionKernel.AttendSlots).
        long tokens = tasks * PerTask;
        Assert.IsFalse(projections.Rows.Keys.Any(name => name.EndsWith("writeOutput")), "Wo_w never runs on the tokens");
        Assert.AreEqual(expected.Projections, projections.MultiplyAdds + options.KemBlocks * tokens * Width * Width, "projections: those run, plus the folded Wo_w");
        if (variant == "Kem") Assert.AreEqual(expected, InteractionCost.Kem(tasks, PerTask, Width, Slots, keptPerSlot: TopK), "for the defaults the options overload is the plain count");
    }

    [TestMethod]
    public void Memory_options_and_rounds_add_what_the_spec_counts()
    {
        var kem = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 20, TopK = 3 };
        var plain = InteractionCost.Kem(2, 1008, 384, kem);
        const long m = 20, d = 384;
        Assert.AreEqual(4 * m * d * d + 2 * d * d, InteractionCost.Kem(2, 1008, 384, kem with { MemoryUpdate = MemoryUpdate.Gated }).Projections - plain.Projections, "Gated");
        Assert.AreEqual(8 * m * d * d, InteractionCost.Kem(2, 1008, 384, kem with { MemoryMlp = true }).Projections - plain.Projections, "MemoryMlp");
        Assert.AreEqual(m * (2 * 1008 - 3) * d, InteractionCost.Kem(2, 1008, 384, kem with { TopKAxis = TopKAxis.Slots }).AttentionPart - plain.AttentionPart, "Slots: dense retrieve sum");
        Assert.AreEqual(plain with { Projections = 2 * plain.Projections, AttentionPart = 2 * plain.AttentionPart }, InteractionCost.Kem(2, 1008, 384, kem with { KemBlocks = 2 }), "two rounds");
    }

    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    public void Cross_attention_cost_equals_the_products_the_module_runs(int tasks)
    {
        using var module = Create("CrossAttention", tasks);
        var projections = new LinearCounter(module);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        module.call(Tokens(tasks: tasks, batch: 1));

        // Every target's attention: scores and weighted sum, Lq·Lk·d each, with Lq, Lk the rows its q and kv projections saw.
        var attention = Enumerable.Range(0, tasks).Sum(t =>
            2 * projections.Rows[$"targets.{t}.attention.query"] * projections.Rows[$"targets.{t}.attention.keyValue"] * Width);
        var expected = InteractionCost.CrossAttention(tasks, PerTask, Width);
        Assert.AreEqual(expected.AttentionPart, attention, "attention part");
        Assert.AreEqual(expected.Projections, projections.MultiplyAdds, "projections");
    }

    /// <summary>Counts rows·in·out of every Linear call of a module through forward hooks.</summary>
    private sealed class LinearCounter
    {
        public long MultiplyAdds { get; private set; }
        public Dictionary<string, long> Rows { get; } = [];

        public LinearCounter(nn.Module module)
        {
            foreach (var (name, child) in module.named_modules())
            {
                if (child is not Linear linear) continue;
                linear.register_forward_hook((_, input, output) =>
                {
                    var rows = input.numel() / input.shape[^1];
                    Rows[name] = Rows.GetValueOrDefault(name) + rows;
                    MultiplyAdds += rows * input.shape[^1] * output.shape[^1];
                    return output;
                });
            }
        }
    }
}
