using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// Simplex Equiangular Tight Frame (MODEL-SPEC §3): W = √(K/(K−1)) · U · (I_K − 1_K 1_Kᵀ/K), D×K, with U the
/// orthonormal Q factor of a seeded D×K uniform [0,1) matrix. Columns have unit norm, pairwise inner
/// product −1/(K−1), and sum to zero. Built in float64, returned as float32.
/// </summary>
public static class EquiangularTightFrame
{
    /// <summary>The ETF W (D×K, float32) for <paramref name="dim"/> = D ≥ K = <paramref name="vertices"/> ≥ 2.</summary>
    /// <param name="dim">Dimension D of every vertex.</param>
    /// <param name="vertices">Number of vertices K.</param>
    /// <param name="seed">Seed of the uniform draws; the same seed gives a bit-identical W.</param>
    public static Tensor Build(int dim, int vertices, long seed)
    {
        using var scope = NewDisposeScope();
        var basis = Basis(dim, vertices, seed);                                          // U: D×K
        var centring = eye(vertices, dtype: ScalarType.Float64)
                       - ones(vertices, vertices, dtype: ScalarType.Float64) / vertices;  // I − 11ᵀ/K
        var frame = basis.matmul(centring).mul(Math.Sqrt(vertices / (vertices - 1.0)));
        return frame.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>The orthonormal basis U (D×K, float32, UᵀU = I) that <see cref="Build"/> uses for the same arguments.</summary>
    public static Tensor OrthonormalBasis(int dim, int vertices, long seed)
    {
        using var scope = NewDisposeScope();
        return Basis(dim, vertices, seed).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    private static Tensor Basis(int dim, int vertices, long seed)
    {
        if (vertices < 2)
            throw new ArgumentOutOfRangeException(nameof(vertices), vertices, "An ETF needs at least 2 vertices (K ≥ 2).");
        if (dim < vertices)
            throw new ArgumentException($"An ETF with K = {vertices} vertices needs dimension D ≥ K, but D = {dim}: raise the width or lower K.", nameof(dim));
        using var generator = new Generator(unchecked((ulong)seed), CPU);
        var draws = rand(dim, vertices, dtype: ScalarType.Float64, generator: generator);  // D×K uniform [0,1)
        var (q, _) = linalg.qr(draws);                                                      // reduced: Q is D×K
        return q;
    }
}
