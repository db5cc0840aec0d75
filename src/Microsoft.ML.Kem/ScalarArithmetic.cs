using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem;

/// <summary>
/// Tensor × number for code that runs every step. TorchSharp 0.107 turns each number handed to a tensor op into a
/// native <see cref="Scalar"/> and leaves freeing implicitly converted ones to the finalizer thread, which can free
/// one while a native call still reads it (dotnet/TorchSharp pull request 1496; README, "Known issues"). These make
/// the Scalar explicitly and free it as soon as the op has returned, and skip the op where the factor is 1.
/// A number must never reach an op that takes a <see cref="Tensor"/> (<see cref="Else"/>): see there.
/// </summary>
internal static class ScalarArithmetic
{
    /// <summary><paramref name="x"/> · <paramref name="factor"/>; <paramref name="x"/> itself when the factor is 1.</summary>
    public static Tensor Times(this Tensor x, double factor)
    {
        if (factor == 1) return x;
        using var scalar = factor.ToScalar();
        return x.mul(scalar);
    }

    /// <summary><paramref name="x"/> + <paramref name="alpha"/> · <paramref name="other"/>, one fused op.</summary>
    public static Tensor PlusScaled(this Tensor x, Tensor other, double alpha)
    {
        if (alpha == 1) return x + other;
        using var scalar = alpha.ToScalar();
        return x.add(other, alpha: scalar);
    }

    /// <summary>
    /// <c>where(condition, values, otherwise)</c> with a number: <paramref name="otherwise"/> becomes a 0-dim tensor on the
    /// device and in the dtype of <paramref name="values"/> (one fill kernel). TorchSharp 0.107 has no where(Tensor, Tensor,
    /// Scalar), so <c>torch.where(c, x, 0f)</c> compiles through the implicit number → Tensor conversion, which makes a CPU
    /// tensor; ATen's where then copies it to the GPU with a blocking copy, i.e. waits for every kernel queued so far
    /// (a stream sync). A test scans the library's IL for that conversion.
    /// </summary>
    public static Tensor Else(this Tensor values, Tensor condition, double otherwise)
    {
        using var scalar = otherwise.ToScalar();
        using var fill = torch.full(Array.Empty<long>(), scalar, dtype: values.dtype, device: values.device);
        return torch.where(condition, values, fill);
    }
}
