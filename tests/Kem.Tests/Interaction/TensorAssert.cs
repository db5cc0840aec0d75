using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Interaction;

/// <summary>Small tensor checks shared by the interaction tests.</summary>
internal static class TensorAssert
{
    /// <summary>Largest absolute element-wise difference, as a double.</summary>
    public static double MaxAbsDiff(Tensor a, Tensor b) => (a.to_type(ScalarType.Float64) - b.to_type(ScalarType.Float64)).abs().max().item<double>();

    /// <summary>Fails when any element of <paramref name="actual"/> is further than <paramref name="tolerance"/> from <paramref name="expected"/>.</summary>
    public static void Close(Tensor expected, Tensor actual, double tolerance, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shape");
        var diff = MaxAbsDiff(expected, actual);
        Assert.IsTrue(diff <= tolerance, $"{what}: max |diff| = {diff:E3} > {tolerance:E1}");
    }

    /// <summary>Seeded standard-normal tensor (continuous draws, so ties have probability zero).</summary>
    public static Tensor Randn(long seed, params long[] shape)
    {
        using var generator = new Generator((ulong)seed, CPU);
        return randn(shape, generator: generator);
    }
}
