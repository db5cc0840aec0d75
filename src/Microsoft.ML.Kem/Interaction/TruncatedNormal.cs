using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// Truncated-normal initialisation with PyTorch's <c>nn.init.trunc_normal_</c> semantics: N(mean, std²)
/// restricted to the absolute interval [a, b]. TorchSharp 0.107's <c>nn.init.trunc_normal_</c> fills the
/// tensor with the constant <c>std</c> instead, so KemMl uses this one.
/// </summary>
public static class TruncatedNormal
{
    /// <summary>Fills <paramref name="tensor"/> in place by rejection: draws outside [a, b] are drawn again.</summary>
    /// <param name="tensor">Tensor to fill.</param>
    /// <param name="std">Standard deviation of the untruncated normal.</param>
    /// <param name="mean">Mean of the untruncated normal.</param>
    /// <param name="a">Lower cut-off (absolute value, as in PyTorch).</param>
    /// <param name="b">Upper cut-off (absolute value, as in PyTorch).</param>
    public static Tensor Fill(Tensor tensor, double std, double mean = 0.0, double a = -2.0, double b = 2.0)
    {
        if (!(a < b)) throw new ArgumentException($"Truncation needs a < b, got a = {a}, b = {b}.");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        tensor.normal_(mean, std);
        for (var round = 0; round < 64; round++)
        {
            var outside = tensor.lt(a).logical_or(tensor.gt(b));
            if (!outside.any().item<bool>()) break;
            tensor.copy_(where(outside, empty_like(tensor).normal_(mean, std), tensor));
        }
        tensor.clamp_(a, b);   // only reached by cut-offs far in a tail, where rejection is hopeless
        return tensor;
    }
}
