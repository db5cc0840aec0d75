using Kem.Toys;
using Microsoft.ML.Kem.Toys;

namespace Kem.Tests.Toys;

[TestClass]
public sealed class NoiseCommandTests
{
    [TestMethod]
    public void Defaults_are_the_spec_protocol_5_seeds_and_hidden_noise_0_0_5_1()
    {
        var s = NoiseCommand.Parse(new CommandLine([]));
        CollectionAssert.AreEqual(new[] { 1, 2, 3, 4, 5 }, s.Seeds);
        CollectionAssert.AreEqual(new[] { 0, 0.5, 1 }, s.Sigmas);
        Assert.AreEqual(new NoiseToyTrainingOptions(), s.Training, "3,000 steps, batch 64, Adam 1e-3, 1,000 held-out samples");
        CollectionAssert.AreEqual(new[] { NoiseToyInteraction.CrossAttention, NoiseToyInteraction.Kem }, s.Interactions);
        CollectionAssert.AreEqual(new[] { 3, 2 }, s.TaskCounts);
    }

    [TestMethod]
    public void The_results_md_command_still_runs_3_seeds_at_sigma_0()
    {
        var s = NoiseCommand.Parse(new CommandLine(
            "--steps 400 --batch 64 --lr 1e-3 --eval 500 --seeds 1,2,3 --hidden-noise 0".Split(' ')));
        CollectionAssert.AreEqual(new[] { 1, 2, 3 }, s.Seeds);
        CollectionAssert.AreEqual(new[] { 0.0 }, s.Sigmas);
        Assert.AreEqual(new NoiseToyTrainingOptions { Steps = 400, EvaluationSamples = 500 }, s.Training);
        Assert.AreEqual((4, 4, 1f), (s.Slots, s.TopK, s.PositionStd));
    }
}
