using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;
using static Kem.Tests.Interaction.InteractionFixtures;

namespace Kem.Tests.Interaction;

[TestClass]
public sealed class KnowledgeExtractionTests
{
    private static KnowledgeExtraction Kem(string variant, int tasks = TaskCount) => (KnowledgeExtraction)Create(variant, tasks);

    [TestMethod]
    [DataRow("Kem")]
    [DataRow("KemPerTask")]
    [DataRow("KemRenormalizedReplace")]
    [DataRow("KemTaskEmbedding")]
    [DataRow("TaskVertices")]
    [DataRow("TaskVerticesPlain")]
    [DataRow("SlotVertices")]
    [DataRow("SlotVerticesPlain")]
    [DataRow("SlotVerticesReplace")]
    [DataRow("KemGated")]
    [DataRow("SlotVerticesGated")]
    [DataRow("KemMemoryMlp")]
    [DataRow("KemReplaceMemoryMlp")]
    [DataRow("KemSlotAxis")]
    [DataRow("KemSlotAxisRenormalized")]
    [DataRow("KemBlocks2")]
    [DataRow("TaskVerticesBlocks3Gated")]
    [DataRow("Span")]
    public void Every_parameter_gets_a_gradient_and_the_shape_is_kept(string variant)
    {
        using var kem = Create(variant);
        using var scope = NewDisposeScope();
        var x = Tokens();
        var output = kem.call(x);
        CollectionAssert.AreEqual(x.shape, output.shape, "X' has the shape of X");
        (output * TensorAssert.Randn(9, output.shape)).sum().backward();
        foreach (var (name, parameter) in kem.named_parameters())
        {
            Assert.IsNotNull(parameter.grad, $"{name} has no gradient");
            Assert.IsTrue(parameter.grad.isfinite().all().item<bool>(), $"{name} has a non-finite gradient");
            Assert.IsTrue(parameter.grad.abs().max().item<float>() > 0, $"{name} has an all-zero gradient");
        }
    }

    // Values and keys of the fixture's default KEM and sKEM, recorded from the code before MemoryUpdate.Gated, MemoryMlp,
    // TopKAxis, KemBlocks and EtfMode.Span existed (the outputs were bit-identical before and after on the machine that
    // recorded them); the tolerance only allows for another CPU's float rounding.
    [TestMethod]
    [DataRow("Kem", -14.351749f, new[] { 0.12158794f, 0.1396328f, -0.52879345f, 0.09776871f },
        "memorySlots,normTokens.weight,normTokens.bias,normMemory.weight,normMemory.bias,retrieveQuery.weight,retrieveQuery.bias,tokenProjection.weight,tokenProjection.bias,retrieveOutput.weight,retrieveOutput.bias,writeKeyValue.weight,writeKeyValue.bias,writeOutput.weight,writeOutput.bias")]
    [DataRow("TaskVertices", 17.446327f, new[] { -0.9615747f, 0.7399236f, -0.4993748f, -0.059199676f },
        "memorySlots,logTemperature,normTokens.weight,normTokens.bias,normMemory.weight,normMemory.bias,retrieveQuery.weight,retrieveQuery.bias,tokenProjection.weight,tokenProjection.bias,etfQueryProjection.weight,etfQueryProjection.bias,etfKeyProjection.weight,etfKeyProjection.bias,retrieveOutput.weight,retrieveOutput.bias,writeKeyValue.weight,writeKeyValue.bias,writeOutput.weight,writeOutput.bias,etfVertices")]
    public void Default_options_keep_the_recorded_outputs_and_state_dict_keys(string variant, float sum, float[] first, string keys)
    {
        using var kem = Create(variant);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Assert.IsInstanceOfType<KnowledgeExtraction>(kem, "one round is the plain module");
        CollectionAssert.AreEqual(keys.Split(','), kem.state_dict().Keys.ToArray(), "state_dict keys, in order");
        var output = kem.call(Tokens());
        TensorAssert.Close(tensor(first), output[0, 0, 0].narrow(0, 0, 4), 1e-5, "X'[0, 0, 0, :4]");
        Assert.AreEqual(sum, output.sum().item<float>(), 1e-3, "Σ X'");
    }

    /// <summary>
    /// The module keeps the N tokens in their B×N×d layout (block-diagonal slot matrices instead of head splits, the top-k
    /// weights as a keep mask on the detached softmax) and applies the Write's output projection to the slot value rows. Here
    /// MODEL-SPEC §2 is written out as the spec states it: K_r, V_r and Q_w of LN(F), heads split, dense top-k weights,
    /// Wo_w applied to the N tokens. Outputs and every gradient must agree in float64.
    /// </summary>
    [TestMethod]
    [DataRow("Kem")]
    [DataRow("KemPerTask")]
    [DataRow("KemRenormalizedReplace")]
    [DataRow("Span")]
    public void The_module_computes_the_spec_form_written_out(string variant)
    {
        using var kem = Kem(variant);
        kem.to(ScalarType.Float64);
        using var scope = NewDisposeScope();
        var x = Tokens().to(ScalarType.Float64).requires_grad_(true);
        var inputs = kem.parameters().Cast<Tensor>().Prepend(x).ToArray();
        var folded = kem.call(x);
        var reference = SpecForm(kem, x, Options(variant));
        TensorAssert.Close(reference, folded, 1e-10, "X'");
        var g = TensorAssert.Randn(4, x.shape).to(ScalarType.Float64);
        var a = autograd.grad([(folded * g).sum()], inputs, retain_graph: true);   // the two graphs share nodes
        var b = autograd.grad([(reference * g).sum()], inputs);
        var names = kem.named_parameters().Select(e => e.name).Prepend("X").ToArray();
        for (int i = 0; i < inputs.Length; i++) TensorAssert.Close(b[i], a[i], 1e-10, $"gradient of {names[i]}");
    }

    private static Tensor SpecForm(KnowledgeExtraction kem, Tensor x, InteractionOptions o)
    {
        var p = kem.named_parameters().ToDictionary(e => e.name, e => (Tensor)e.parameter);
        var (batch, tasks, perTask) = (x.shape[0], (int)x.shape[1], x.shape[2]);
        Tensor Norm(Tensor t, string name) => nn.functional.layer_norm(t, [Width], p[name + ".weight"], p[name + ".bias"]);
        Tensor Linear(Tensor t, string name) => nn.functional.linear(t, p[name + ".weight"], p[name + ".bias"]);
        Tensor Split(Tensor t) => AttentionKernel.SplitHeads(t, Heads);
        var tokens = Norm(x.reshape(batch, tasks * perTask, Width), "normTokens");                  // LN(F)
        var projected = Linear(tokens, "tokenProjection").chunk(3, -1);                            // K_r, V_r, Q_w
        var keys = o.EtfMode == EtfMode.Span && o.Kind == InteractionKind.StableKem               // K_r = LN(F)·W·Wᵀ·Wk_r
            ? nn.functional.linear(tokens.matmul(kem.EtfVertices!).matmul(kem.EtfVertices!.t()),
                p["tokenProjection.weight"].narrow(0, 0, Width), p["tokenProjection.bias"].narrow(0, 0, Width))
            : projected[0];
        var queries = Linear(Norm(p["memorySlots"], "normMemory"), "retrieveQuery").unsqueeze(0);
        var retrieveWeights = TopKSoftmax.Apply(AttentionKernel.Scores(Split(queries), Split(keys)), o.TopK, o.TopKMode, o.TopKScope, tasks);
        var retrieved = Linear(AttentionKernel.MergeHeads(retrieveWeights.matmul(Split(projected[1]))), "retrieveOutput");
        var memory = o.MemoryUpdate == MemoryUpdate.Replace ? retrieved : p["memorySlots"] + retrieved;
        var keyValue = Linear(Norm(memory, "normMemory"), "writeKeyValue").chunk(2, -1);
        var written = AttentionKernel.Weights(Split(projected[2]), Split(keyValue[0])).matmul(Split(keyValue[1]));   // the module's 1/√d_h (a float)
        return x + Linear(AttentionKernel.MergeHeads(written), "writeOutput").reshape(x.shape);
    }

    [TestMethod]
    [DataRow("Kem", TopK)]
    [DataRow("TaskVertices", TopK)]
    [DataRow("SlotVertices", TopK)]
    [DataRow("KemPerTask", TopK * TaskCount)]
    public void Each_slot_reads_exactly_k_tokens(string variant, int nonZerosPerRow)
    {
        using var kem = Kem(variant);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var trace = kem.Trace(Tokens());
        CollectionAssert.AreEqual(new long[] { Batch, Heads, Slots, TaskCount * PerTask }, trace.RetrieveWeights.shape);
        Assert.IsTrue(trace.RetrieveWeights.ne(0).sum(-1).eq(nonZerosPerRow).all().item<bool>(), "non-zeros per (b, h, slot) row");
    }

    [TestMethod]
    public void Trace_gives_the_forward_output_and_write_weights_over_the_slots()
    {
        using var kem = Kem("Kem");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = Tokens();
        var trace = kem.Trace(x);
        TensorAssert.Close(kem.call(x), trace.Output, 1e-6, "Trace output = forward output");
        CollectionAssert.AreEqual(new long[] { Batch, Heads, TaskCount * PerTask, Slots }, trace.WriteWeights.shape);
        TensorAssert.Close(ones(Batch, Heads, TaskCount * PerTask), trace.WriteWeights.sum(-1), 1e-6, "write rows sum to 1");
        Assert.IsTrue(trace.WriteWeights.gt(0).all().item<bool>(), "Write has no top-k");
        CollectionAssert.AreEqual(new long[] { Batch, Slots, Width }, trace.Memory.shape);
    }

    [TestMethod]
    [DataRow("TaskVertices")]
    [DataRow("SlotVertices")]
    public void Etf_is_a_buffer_that_a_training_step_leaves_unchanged(string variant)
    {
        using var kem = Kem(variant);
        var etf = kem.EtfVertices!;
        Assert.IsFalse(kem.named_parameters().Any(p => p.name.Contains("etfVertices")), "ETF is not a parameter");
        Assert.IsTrue(kem.named_buffers().Any(b => b.name == "etfVertices"), "ETF is a registered buffer");
        Assert.IsFalse(etf.requires_grad);
        var etfBefore = etf.clone();
        var parametersBefore = kem.parameters().Select(p => p.detach().clone()).ToArray();
        using var optimizer = optim.SGD(kem.parameters(), 0.1);
        using (var scope = NewDisposeScope())
        {
            optimizer.zero_grad();
            var output = kem.call(Tokens());
            (output * TensorAssert.Randn(9, output.shape)).sum().backward();
            optimizer.step();
        }
        Assert.IsTrue(kem.EtfVertices!.eq(etfBefore).all().item<bool>(), "ETF changed");
        var changed = kem.parameters().Zip(parametersBefore).Count(pair => !pair.First.eq(pair.Second).all().item<bool>());
        Assert.AreEqual(parametersBefore.Length, changed, "every parameter moves");
    }

    [TestMethod]
    [DataRow("TaskVertices", TaskCount)]
    [DataRow("SlotVertices", Slots)]
    public void Every_head_has_its_own_seeded_frame(string variant, int vertices)
    {
        using var kem = Kem(variant);
        using var scope = NewDisposeScope();
        var etf = kem.EtfVertices!;
        CollectionAssert.AreEqual(new long[] { Heads, Width / Heads, vertices }, etf.shape);
        var seed = Options(variant).EtfSeed;
        for (var h = 0; h < Heads; h++)
            Assert.IsTrue(etf[h].eq(EquiangularTightFrame.Build(Width / Heads, vertices, seed + h)).all().item<bool>(), $"head {h}");
        Assert.IsFalse(etf[0].eq(etf[1]).all().item<bool>(), "heads differ");
    }

    // Noise toy in miniature (MODEL-SPEC §14): h = 1, d = 4, tasks 1–2 carry signal, task 3 is noise.
    // Hand-set Retrieve: every slot's query is e_0 and every key is (LN(x)_0, 0, 0, 0), so a token's score
    // is its normalised first feature: +1.7 for signal tokens, −1.7 for noise tokens.
    private static KnowledgeExtraction NoiseToyKem(TopKMode mode, int topK)
    {
        manual_seed(5);
        var options = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 2, TopK = topK, TopKMode = mode };
        var kem = new KnowledgeExtraction("noise_toy", width: 4, heads: 1, tasks: 3, options);
        var parameters = kem.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        parameters["retrieveQuery.weight"].zero_();
        parameters["retrieveQuery.bias"].copy_(tensor(new float[] { 1, 0, 0, 0 }));
        parameters["tokenProjection.weight"].narrow(0, 0, 4).zero_();
        parameters["tokenProjection.weight"][0, 0] = tensor(1f);
        parameters["tokenProjection.bias"].narrow(0, 0, 4).zero_();
        return kem;
    }

    private static Tensor NoiseToyTokens(float noiseLead, long seed)
    {
        var signal = tensor(new float[] { 3, 0, 0, 0 }).expand(1, 2, 4, 4) + TensorAssert.Randn(seed, 1, 2, 4, 4) * 0.1;
        var noise = tensor(new float[] { noiseLead, 0, 0, 0 }).expand(1, 1, 4, 4) + TensorAssert.Randn(seed + 1, 1, 1, 4, 4) * 0.1;
        return cat([signal, noise], 1);                                          // 1×3×4×4
    }

    [TestMethod]
    public void Masked_top_k_gives_exactly_zero_weight_to_noise_tokens_that_score_lowest()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var tokens = NoiseToyTokens(-3, seed: 1);
        using var kem = NoiseToyKem(TopKMode.Masked, topK: 3);
        var noiseWeights = kem.Trace(tokens).RetrieveWeights.narrow(-1, 8, 4);
        Assert.AreEqual(0f, noiseWeights.abs().max().item<float>(), "top-k weight on noise");

        using var softmaxKem = NoiseToyKem(TopKMode.Masked, topK: 12);             // k = N: plain softmax
        Assert.IsTrue(softmaxKem.Trace(tokens).RetrieveWeights.narrow(-1, 8, 4).gt(0).all().item<bool>(), "softmax leaks onto noise");
    }

    [TestMethod]
    public void Renormalized_top_k_makes_signal_tasks_independent_of_unselected_noise()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var kem = NoiseToyKem(TopKMode.Renormalized, topK: 3);
        var first = kem.call(NoiseToyTokens(-3, seed: 1));
        var other = NoiseToyTokens(-3, seed: 1);
        other.narrow(1, 2, 1).copy_(NoiseToyTokens(-5, seed: 8).narrow(1, 2, 1)); // different noise, still lowest
        var second = kem.call(other);
        TensorAssert.Close(first.narrow(1, 0, 2), second.narrow(1, 0, 2), 1e-6, "signal task outputs");
        Assert.IsTrue(TensorAssert.MaxAbsDiff(first.narrow(1, 2, 1), second.narrow(1, 2, 1)) > 0.1, "the noise task itself changed");
    }

    [TestMethod]
    public void Lambda_scales_the_broadcast_residual()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = Tokens();
        manual_seed(1);
        using var full = new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options("Kem"));
        manual_seed(1);
        using var half = new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options("Kem") with { Lambda = 0.5f });
        TensorAssert.Close((full.call(x) - x) * 0.5, half.call(x) - x, 1e-6, "λ·O");
    }

    [TestMethod]
    public void Invalid_shapes_and_options_are_rejected_with_a_message()
    {
        var slotVertices = Options("SlotVertices") with { MemorySlots = 9 };    // d_h = 8 < m = 9
        var error = Assert.ThrowsExactly<ArgumentException>(() => new KnowledgeExtraction("kem", Width, Heads, TaskCount, slotVertices));
        StringAssert.Contains(error.Message, "MemorySlots");
        Assert.ThrowsExactly<ArgumentException>(() => new KnowledgeExtraction("kem", 15, Heads, TaskCount, Options("Kem")));
        Assert.ThrowsExactly<ArgumentException>(() => new KnowledgeExtraction("kem", Width, Heads, TaskCount, Options("CrossAttention")));
        using var kem = Kem("Kem");
        using var scope = NewDisposeScope();
        Assert.ThrowsExactly<ArgumentException>(() => kem.call(Tokens(tasks: 3)));
    }
}
