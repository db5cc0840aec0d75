using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;
using static Kem.Tests.Interaction.InteractionFixtures;

namespace Kem.Tests.Interaction;

/// <summary>KEM's alternative readings as options: TopKAxis.Slots, KemBlocks, EtfMode.Span, and their validation.</summary>
[TestClass]
public sealed class KemOptionsTests
{
    [TestMethod]
    [DataRow("KemSlotAxis")]
    [DataRow("KemSlotAxisRenormalized")]
    public void Slot_axis_retrieve_gives_every_token_k_slots_and_normalised_slot_rows(string variant)
    {
        using var kem = (KnowledgeExtraction)Create(variant);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var weights = kem.Trace(Tokens()).RetrieveWeights;                              // B×h×m×N
        CollectionAssert.AreEqual(new long[] { Batch, Heads, Slots, TaskCount * PerTask }, weights.shape);
        Assert.IsTrue(weights.ne(0).sum(-2).eq(Options(variant).TopK).all().item<bool>(), "k slots per token");
        var rowSums = weights.sum(-1);
        var chosen = rowSums.gt(0);
        Assert.IsTrue(chosen.any().item<bool>(), "some slot is chosen");
        TensorAssert.Close(ones(chosen.sum().item<long>()), rowSums.masked_select(chosen), 1e-6, "chosen slot rows sum to 1");
    }

    [TestMethod]
    public void Kem_blocks_2_runs_two_rounds_with_their_own_slots_and_twice_the_parameters()
    {
        using var one = Create("Kem");
        using var two = Create("KemBlocks2");
        var rounds = two as KemRounds ?? throw new AssertFailedException("KemBlocks 2 is a KemRounds");
        Assert.AreEqual(2, rounds.Rounds.Count);
        var count = (nn.Module m) => m.parameters().Sum(p => p.numel());
        Assert.AreEqual(2 * count(one), count(two), "2× the KEM parameters");
        var keys = two.state_dict().Keys.ToArray();
        CollectionAssert.AreEqual(one.state_dict().Keys.Select(k => "rounds.0." + k).Concat(one.state_dict().Keys.Select(k => "rounds.1." + k)).ToArray(), keys,
            "each round keeps the one-round names under rounds.r");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var slots = two.state_dict();
        Assert.IsTrue(TensorAssert.MaxAbsDiff(slots["rounds.0.memorySlots"], slots["rounds.1.memorySlots"]) > 1e-3, "each round has its own R_0");
        var x = Tokens();
        var output = two.call(x);
        TensorAssert.Close(rounds.Rounds[1].call(rounds.Rounds[0].call(x)), output, 1e-6, "round 1 reads round 0's output");
        var traces = rounds.Trace(x);
        Assert.AreEqual(2, traces.Count);
        TensorAssert.Close(output, traces[1].Output, 1e-6, "the last trace's output is the forward output");
        Assert.IsTrue(TensorAssert.MaxAbsDiff(one.call(x), output) > 1e-3, "two rounds differ from one");
    }

    [TestMethod]
    public void Span_projects_the_keys_onto_the_etf_span_so_the_scores_have_rank_t_minus_1()
    {
        // k ≥ N keeps every token, so log A = S − logsumexp(S): S centred over the tokens is log A centred the same way.
        var keepAll = Options("Span") with { TopK = TaskCount * PerTask };
        manual_seed(42);
        using var span = new KnowledgeExtraction("kem", Width, Heads, TaskCount, keepAll);
        manual_seed(42);
        using var plain = new KnowledgeExtraction("kem", Width, Heads, TaskCount, keepAll with { Kind = InteractionKind.Kem });
        CollectionAssert.AreEqual(plain.state_dict().Keys.Append("etfVertices").ToArray(), span.state_dict().Keys.ToArray(),
            "Span adds only the fixed frame (no input projection, no temperature)");
        Assert.IsTrue(span.EtfVertices!.eq(EquiangularTightFrame.Build(Width, TaskCount, keepAll.EtfSeed)).all().item<bool>(), "W: d×T, the spec's ETF");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = Tokens();
        double SecondSingularShare(KnowledgeExtraction kem)
        {
            var logWeights = kem.Trace(x).RetrieveWeights.log();                              // B×h×m×N
            var centred = logWeights - logWeights.mean([-1], keepdim: true);
            var singular = linalg.svdvals(centred.to_type(ScalarType.Float64));               // B×h×min(m, N)
            return (singular.select(-1, 1) / singular.select(-1, 0)).max().item<double>();
        }
        Assert.IsTrue(SecondSingularShare(span) < 1e-4, $"Span: every head's centred scores have rank T − 1 = 1 ({SecondSingularShare(span):E2})");
        Assert.IsTrue(SecondSingularShare(plain) > 1e-2, "plain KEM's scores have full rank");
    }

    [TestMethod]
    public void Nonsensical_kem_option_combinations_are_rejected_with_what_to_change()
    {
        void Rejected<TException>(InteractionOptions options, string mentions, int tasks = TaskCount) where TException : Exception
        {
            var error = Assert.ThrowsExactly<TException>(() => InteractionFactory.Create("kem", options, Width, Heads, tasks));
            StringAssert.Contains(error.Message, mentions);
        }
        var kem = Options("Kem");
        Rejected<ArgumentOutOfRangeException>(kem with { KemBlocks = 0 }, "KemBlocks");
        Rejected<ArgumentException>(kem with { MemoryUpdate = MemoryUpdate.Gated, MemoryMlp = true }, "MemoryMlp");
        Rejected<ArgumentException>(kem with { TopKAxis = TopKAxis.Slots, TopK = Slots + 1 }, "MemorySlots");
        Rejected<ArgumentException>(kem with { TopKAxis = TopKAxis.Slots, TopKScope = TopKScope.PerTask }, "TopKScope.Joint");
        Rejected<ArgumentException>(Options("Span"), "Span", tasks: 1);
        Rejected<ArgumentException>(Options("CrossAttention") with { KemBlocks = 2 }, "KemBlocks");
        Rejected<ArgumentException>(Options("CrossAttention") with { MemoryUpdate = MemoryUpdate.Gated }, "Gated");
        Rejected<ArgumentException>(Options("None") with { TopKAxis = TopKAxis.Slots }, "TopKAxis");
        var oneRound = Assert.ThrowsExactly<ArgumentException>(() => new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options("KemBlocks2")));
        StringAssert.Contains(oneRound.Message, "InteractionFactory");
        using var slotsKeepAll = InteractionFactory.Create("kem", kem with { TopKAxis = TopKAxis.Slots, TopK = Slots }, Width, Heads, TaskCount);   // k = m is allowed
    }

    [TestMethod]
    [DataRow("Kem")]
    [DataRow("TaskVertices")]
    public void Identity_memory_init_sets_slot_i_to_the_unit_vector_e_i(string variant)
    {
        manual_seed(42);
        using var kem = new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options(variant) with { MemoryInit = MemoryInit.Identity });
        var slots = kem.state_dict()["memorySlots"];
        CollectionAssert.AreEqual(new long[] { Slots, Width }, slots.shape, "same parameter, same shape");
        var expected = new float[Slots * Width];
        for (var i = 0; i < Slots; i++) expected[i * Width + i] = 1f;
        CollectionAssert.AreEqual(expected, slots.data<float>().ToArray(), "row i = e_i padded with zeros, exactly");
        manual_seed(42);
        using var plain = new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options(variant));
        CollectionAssert.AreEqual(plain.state_dict().Keys.ToArray(), kem.state_dict().Keys.ToArray(), "only the initial values change");
    }

    [TestMethod]
    public void Default_memory_init_is_the_truncated_normal_draw_of_before()
    {
        manual_seed(42);
        using var omitted = new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options("Kem"));
        manual_seed(42);
        using var explicitDefault = new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options("Kem") with { MemoryInit = MemoryInit.TruncatedNormal });
        Assert.AreEqual(MemoryInit.TruncatedNormal, new InteractionOptions().MemoryInit);
        foreach (var (key, t) in omitted.state_dict())
            Assert.IsTrue(t.bytes.SequenceEqual(explicitDefault.state_dict()[key].bytes), $"{key}: the default and explicit TruncatedNormal build identically");
        // R_0 is the first random draw of the module (LN_x draws nothing): the code before MemoryInit filled it like this
        manual_seed(42);
        using var before = TruncatedNormal.Fill(empty(Slots, Width), std: 0.02);
        Assert.IsTrue(before.bytes.SequenceEqual(omitted.state_dict()["memorySlots"].bytes), "R_0 keeps its truncated-normal values for a fixed seed");
    }

    [TestMethod]
    public void Identity_memory_init_needs_m_at_most_d_and_a_kem()
    {
        var tooMany = Assert.ThrowsExactly<ArgumentException>(() =>
            InteractionFactory.Create("kem", Options("Kem") with { MemoryInit = MemoryInit.Identity, MemorySlots = Width + 1 }, Width, Heads, TaskCount));
        StringAssert.Contains(tooMany.Message, $"MemorySlots m = {Width + 1} ≤ Width d = {Width}");
        using var square = InteractionFactory.Create("kem", Options("Kem") with { MemoryInit = MemoryInit.Identity, MemorySlots = Width }, Width, Heads, TaskCount);   // m = d is allowed
        var noMemory = Assert.ThrowsExactly<ArgumentException>(() =>
            InteractionFactory.Create("ca", Options("CrossAttention") with { MemoryInit = MemoryInit.Identity }, Width, Heads, TaskCount));
        StringAssert.Contains(noMemory.Message, "MemoryInit");
    }

    [TestMethod]
    [DataRow("Kem")]
    [DataRow("TaskVertices")]
    [DataRow("Span")]
    public void Per_task_write_queries_keep_shapes_names_and_train_every_task_query(string variant)
    {
        manual_seed(42);
        using var shared = new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options(variant));
        manual_seed(42);
        using var perTask = new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options(variant) with { PerTaskWriteQuery = true });
        var sharedKeys = shared.state_dict();
        CollectionAssert.AreEqual(new long[] { 3 * Width, Width }, sharedKeys["tokenProjection.weight"].shape, "default: [Wk_r | Wv_r | Wq_w] fused");
        Assert.IsFalse(sharedKeys.Keys.Any(k => k.StartsWith("writeQuery")), "default: no per-task query");
        var keys = perTask.state_dict();
        CollectionAssert.AreEquivalent(sharedKeys.Keys.Append("writeQuery.weight").Append("writeQuery.bias").ToArray(), keys.Keys.ToArray());
        CollectionAssert.AreEqual(new long[] { 2 * Width, Width }, keys["tokenProjection.weight"].shape, "[Wk_r | Wv_r]");
        CollectionAssert.AreEqual(new long[] { TaskCount, Width, Width }, keys["writeQuery.weight"].shape, "T×d×d");
        CollectionAssert.AreEqual(new long[] { TaskCount, 1, Width }, keys["writeQuery.bias"].shape);

        using var scope = NewDisposeScope();
        var x = Tokens();
        var output = perTask.call(x);
        CollectionAssert.AreEqual(x.shape, output.shape);
        output.square().sum().backward();
        var grad = perTask.named_parameters().Single(p => p.name == "writeQuery.weight").parameter.grad!;
        for (var t = 0; t < TaskCount; t++)
            Assert.IsTrue(grad[t].abs().sum().item<float>() > 0, $"task {t}'s Wq_w gets a gradient");
    }

    [TestMethod]
    [DataRow("Kem")]
    [DataRow("TaskVertices")]
    [DataRow("Span")]
    public void Per_task_write_queries_all_equal_to_the_shared_one_give_the_shared_output(string variant)
    {
        manual_seed(42);
        using var shared = new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options(variant));
        manual_seed(7);
        using var perTask = new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options(variant) with { PerTaskWriteQuery = true });
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var from = shared.state_dict();
        var fusedWeight = from["tokenProjection.weight"];                                    // 3d×d: [Wk_r | Wv_r | Wq_w]
        var fusedBias = from["tokenProjection.bias"];
        foreach (var (key, t) in perTask.state_dict())
            t.copy_(key switch
            {
                "tokenProjection.weight" => fusedWeight.narrow(0, 0, 2 * Width),
                "tokenProjection.bias" => fusedBias.narrow(0, 0, 2 * Width),
                "writeQuery.weight" => fusedWeight.narrow(0, 2 * Width, Width).expand(TaskCount, Width, Width),
                "writeQuery.bias" => fusedBias.narrow(0, 2 * Width, Width).expand(TaskCount, 1, Width),
                _ => from[key],
            });
        var x = Tokens();
        var expected = shared.call(x);
        TensorAssert.Close(expected, perTask.call(x), 1e-6, "T copies of the shared Wq_w are the shared module");

        // task 1's own query changes task 1's output only (task 0 reads the same memory with its own query)
        perTask.state_dict()["writeQuery.weight"][1].add_(TensorAssert.Randn(5, Width, Width));   // not a constant: LN(X) rows sum to 0
        var changed = perTask.call(x);
        TensorAssert.Close(expected.select(1, 0), changed.select(1, 0), 1e-6, "task 0 keeps its output");
        Assert.IsTrue(TensorAssert.MaxAbsDiff(expected.select(1, 1), changed.select(1, 1)) > 1e-3, "task 1 uses its own Wq_w");
    }

    [TestMethod]
    public void Per_task_write_query_keeps_the_cost_and_needs_a_kem()
    {
        var kem = Options("Kem");
        Assert.AreEqual(InteractionCost.Kem(2, 1008, 384, kem), InteractionCost.Kem(2, 1008, 384, kem with { PerTaskWriteQuery = true }), "one Lin(d→d) query per token either way");
        var noMemory = Assert.ThrowsExactly<ArgumentException>(() =>
            InteractionFactory.Create("ca", Options("CrossAttention") with { PerTaskWriteQuery = true }, Width, Heads, TaskCount));
        StringAssert.Contains(noMemory.Message, "PerTaskWriteQuery");
    }
}
