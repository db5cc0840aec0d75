using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Interaction;

[TestClass]
public sealed class EquiangularTightFrameTests
{
    private const int D = 8;
    private const long Seed = 1234;

    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(5)]
    public void Basis_has_orthonormal_columns(int k)
    {
        using var scope = NewDisposeScope();
        var u = EquiangularTightFrame.OrthonormalBasis(D, k, Seed);
        TensorAssert.Close(eye(k), u.t().matmul(u), 1e-6, "UᵀU");
    }

    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(5)]
    public void Vertices_have_unit_norm_and_equal_angles(int k)
    {
        using var scope = NewDisposeScope();
        var w = EquiangularTightFrame.Build(D, k, Seed);
        CollectionAssert.AreEqual(new long[] { D, k }, w.shape);
        var gram = w.t().matmul(w);
        TensorAssert.Close(ones(k), gram.diagonal(), 1e-6, "‖w_i‖²");
        var offDiagonal = gram.masked_select(eye(k, dtype: ScalarType.Bool).logical_not());
        TensorAssert.Close(full_like(offDiagonal, -1.0 / (k - 1)), offDiagonal, 1e-6, "cos(w_i, w_j)");
        var expected = (eye(k) - ones(k, k) / k) * (k / (k - 1.0));
        TensorAssert.Close(expected, gram, 1e-6, "WᵀW");
    }

    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(5)]
    public void Vertices_sum_to_zero_and_span_K_minus_1_dimensions(int k)
    {
        using var scope = NewDisposeScope();
        var w = EquiangularTightFrame.Build(D, k, Seed);
        TensorAssert.Close(zeros(D), w.sum(1), 1e-6, "W·1");
        Assert.AreEqual(k - 1L, linalg.matrix_rank(w, atol: 1e-5).item<long>());
    }

    [TestMethod]
    public void Same_seed_gives_a_bit_identical_frame()
    {
        using var scope = NewDisposeScope();
        var a = EquiangularTightFrame.Build(D, 3, Seed);
        var b = EquiangularTightFrame.Build(D, 3, Seed);
        var other = EquiangularTightFrame.Build(D, 3, Seed + 1);
        Assert.IsTrue(a.eq(b).all().item<bool>(), "same seed");
        Assert.IsFalse(a.eq(other).all().item<bool>(), "another seed gives another frame");
    }

    [TestMethod]
    public void Two_vertices_are_antipodal()
    {
        using var scope = NewDisposeScope();
        var w = EquiangularTightFrame.Build(D, 2, Seed);
        TensorAssert.Close(-w[.., 0], w[.., 1], 1e-6, "w_2 = −w_1");
    }

    [TestMethod]
    public void Fewer_dimensions_than_vertices_are_rejected()
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() => EquiangularTightFrame.Build(4, 5, Seed));
        StringAssert.Contains(error.Message, "D ≥ K");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => EquiangularTightFrame.Build(D, 1, Seed));
    }
}
