using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;
using static Kem.Tests.Interaction.InteractionFixtures;

namespace Kem.Tests.Interaction;

[TestClass]
public sealed class InteractionFactoryTests
{
    [TestMethod]
    [DataRow("Kem")]
    [DataRow("TaskVertices")]
    [DataRow("SlotVertices")]
    [DataRow("KemTaskEmbedding")]
    [DataRow("CrossAttentionTaskEmbedding")]
    [DataRow("KemGated")]
    [DataRow("KemMemoryMlp")]
    [DataRow("KemSlotAxis")]
    [DataRow("KemBlocks2")]
    [DataRow("Span")]
    public void Forward_creates_no_tensor_outside_the_callers_scope(string variant)
    {
        using var module = Create(variant);
        // One pass first: AttentionKernel's head masks and TopKSoftmax's true are cached per device, dtype and shape, on first use
        using (var warmUp = NewDisposeScope())
        {
            var first = module.call(Tokens());
            (first * first).sum().backward();
        }
        var statistics = DisposeScopeManager.Statistics;
        var (createdOutside, live) = (statistics.CreatedOutsideScopeCount, statistics.ThreadTotalLiveCount);
        using (var scope = NewDisposeScope())
        {
            var output = module.call(Tokens());
            (output * output).sum().backward();
        }
        Assert.AreEqual(createdOutside, statistics.CreatedOutsideScopeCount, "tensors created outside the scope");
        Assert.AreEqual(live, statistics.ThreadTotalLiveCount, "live tensors after the scope");
    }

    [TestMethod]
    public void None_returns_its_input_and_the_factory_builds_each_kind()
    {
        using var none = Create("None");
        using var scope = NewDisposeScope();
        var x = Tokens();
        Assert.AreSame(x, none.call(x));
        Assert.IsInstanceOfType<NoInteraction>(none);
        using var kem = Create("Kem");
        Assert.IsInstanceOfType<KnowledgeExtraction>(kem);
        using var skem = Create("SlotVertices");
        Assert.IsInstanceOfType<KnowledgeExtraction>(skem);
        using var rounds = Create("KemBlocks2");
        Assert.IsInstanceOfType<KemRounds>(rounds);
        Assert.ThrowsExactly<ArgumentException>(() => Create("CrossAttention", tasks: 1));
    }
}
