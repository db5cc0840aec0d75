using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;
using static Kem.Tests.Interaction.InteractionFixtures;

namespace Kem.Tests.Interaction;

/// <summary>
/// MemoryUpdate.Gated and MemoryMlp (MODEL-SPEC §2 "Memory update") against the equations written out with plain tensor
/// operations. Each KEM is compared with a twin built from the same seed whose Retrieve weights are the same (the update's
/// modules are created after Wo_r), so the twin's trace gives the memory before the update.
/// </summary>
[TestClass]
public sealed class MemoryUpdatesTests
{
    private static KnowledgeExtraction Build(InteractionOptions options)
    {
        manual_seed(42);
        return new KnowledgeExtraction("kem", Width, Heads, TaskCount, options);
    }

    // Independent of the modules: LayerNorm and Linear spelt out from a name → parameter table.
    private static Tensor LayerNorm(Tensor x, Dictionary<string, Tensor> p, string prefix)
    {
        var centred = x - x.mean([-1], keepdim: true);
        var variance = (centred * centred).mean([-1], keepdim: true);
        return centred / (variance + 1e-5).sqrt() * p[prefix + ".weight"] + p[prefix + ".bias"];
    }

    private static Tensor Linear(Tensor x, Dictionary<string, Tensor> p, string prefix) =>
        x.matmul(p[prefix + ".weight"].t()) + p[prefix + ".bias"];

    /// <summary>Moves every parameter under <paramref name="prefix"/> away from its init (LayerNorms start at 1 and 0).</summary>
    private static void Perturb(nn.Module module, string prefix, long seed)
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in module.named_parameters().Where(p => p.name.StartsWith(prefix)))
            parameter.add_(TensorAssert.Randn(seed++, parameter.shape) * 0.3);
    }

    [TestMethod]
    public void Gated_update_matches_the_written_out_gate_equations()
    {
        var gatedOptions = Options("KemGated");
        using var gated = Build(gatedOptions);
        using var replace = Build(gatedOptions with { MemoryUpdate = MemoryUpdate.Replace });   // same R_0 … Wo_r
        Perturb(gated, "gatedUpdate.", seed: 100);
        Perturb(gated, "normTokens.", seed: 200);
        Perturb(replace, "normTokens.", seed: 200);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = Tokens();
        var p = gated.named_parameters().ToDictionary(e => e.name, e => (Tensor)e.parameter);

        var slots = p["memorySlots"];                                                       // R_0: m×d
        var retrieved = replace.Trace(x).Memory;                                            // R: B×m×d (Replace: R_new = R)
        var pooled = LayerNorm(x.reshape(Batch, TaskCount * PerTask, Width), p, "normTokens").mean([1]);   // x̄: B×d
        var attended = LayerNorm(slots + retrieved, p, "gatedUpdate.normAttended");
        var mlp = Linear(Linear(attended, p, "gatedUpdate.mlp.fc1").relu(), p, "gatedUpdate.mlp.fc2").relu();
        var refined = LayerNorm(attended + mlp, p, "gatedUpdate.normRefined");
        var gates = Linear(pooled, p, "gatedUpdate.inputGate").unsqueeze(1) + Linear(slots.tanh(), p, "gatedUpdate.memoryGate");
        var (inputGate, forgetGate) = (gates.narrow(-1, 0, Width), gates.narrow(-1, Width, Width));
        var expected = inputGate.sigmoid() * refined.tanh() + forgetGate.sigmoid() * slots;

        var memory = gated.Trace(x).Memory;
        TensorAssert.Close(expected, memory, 1e-5, "R_new = σ(i)·tanh(R) + σ(f)·R_0");
        Assert.IsTrue(TensorAssert.MaxAbsDiff(memory[0], memory[1]) > 1e-3, "the gates see each sample's own tokens");
    }

    [TestMethod]
    [DataRow(MemoryUpdate.Residual)]
    [DataRow(MemoryUpdate.Replace)]
    public void Memory_mlp_adds_the_written_out_mlp_of_the_normalised_memory(MemoryUpdate update)
    {
        var plainOptions = Options("Kem") with { MemoryUpdate = update };
        using var withMlp = Build(plainOptions with { MemoryMlp = true });
        using var plain = Build(plainOptions);                                              // same Retrieve weights
        Perturb(withMlp, "memoryMlp.", seed: 300);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = Tokens();
        var p = withMlp.named_parameters().ToDictionary(e => e.name, e => (Tensor)e.parameter);

        var before = plain.Trace(x).Memory;                                                 // R_new of the update alone
        var hidden = nn.functional.gelu(Linear(LayerNorm(before, p, "memoryMlp.norm"), p, "memoryMlp.fc1"));
        var expected = before + Linear(hidden, p, "memoryMlp.fc2");
        CollectionAssert.AreEqual(new long[] { 4 * Width, Width }, p["memoryMlp.fc1.weight"].shape, "Lin(d→4d)");
        TensorAssert.Close(expected, withMlp.Trace(x).Memory, 1e-5, "R_new + MLP(LN(R_new))");
        Assert.IsTrue(TensorAssert.MaxAbsDiff(before, expected) > 1e-3, "the MLP changes the memory");
    }

    [TestMethod]
    public void Gated_memory_and_mlp_change_only_the_memory_side_parameter_names()
    {
        using var gated = Create("KemGated");
        using var mlp = Create("KemMemoryMlp");
        using var plain = Create("Kem");
        var plainKeys = plain.state_dict().Keys.ToHashSet();
        CollectionAssert.AreEquivalent(
            new[] { "normAttended.weight", "normAttended.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
                    "normRefined.weight", "normRefined.bias", "inputGate.weight", "inputGate.bias", "memoryGate.weight", "memoryGate.bias" }
                .Select(k => "gatedUpdate." + k).ToArray(),
            gated.state_dict().Keys.Where(k => !plainKeys.Contains(k)).ToArray(), "Gated adds the SGW update only");
        CollectionAssert.AreEquivalent(
            new[] { "memoryMlp.norm.weight", "memoryMlp.norm.bias", "memoryMlp.fc1.weight", "memoryMlp.fc1.bias", "memoryMlp.fc2.weight", "memoryMlp.fc2.bias" },
            mlp.state_dict().Keys.Where(k => !plainKeys.Contains(k)).ToArray(), "MemoryMlp adds the MLP only");
        Assert.IsTrue(plainKeys.IsSubsetOf(gated.state_dict().Keys) && plainKeys.IsSubsetOf(mlp.state_dict().Keys), "the KEM keys stay");
    }
}
