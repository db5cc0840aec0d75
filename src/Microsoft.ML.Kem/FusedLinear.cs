using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem;

/// <summary>
/// Linear layers on inputs of more than two axes as one fused product. TorchSharp 0.107's <c>Linear</c> and
/// <c>nn.functional.linear</c> go through libtorch's C++-frontend <c>linear</c>, which fuses the bias into the product
/// (<c>addmm</c>) only for 2-D inputs: for B×L×d it runs <c>matmul</c> and then adds the bias in place, one more kernel and
/// one more pass over the output per call. PyTorch's own <c>linear</c> folds a contiguous input to 2-D first. These do
/// the same: the leading axes are flattened (a view where the rows are evenly strided, as every contiguous input's are),
/// the product runs on rows × d, and the result is viewed back. <see cref="Apply"/> still calls the module, so its hooks
/// see the call (with the 2-D rows).
/// </summary>
internal static class FusedLinear
{
    /// <summary><paramref name="layer"/>(<paramref name="input"/>) for …×d_in → …×d_out, one fused product.</summary>
    public static Tensor Apply(this Linear layer, Tensor input) =>
        input.dim() <= 2 ? layer.call(input) : layer.call(Rows(input)).view(OutputShape(input, layer.weight!.shape[0]));

    /// <summary><c>nn.functional.linear</c> for …×d_in → …×d_out, one fused product.</summary>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias = null) =>
        input.dim() <= 2 || bias is null
            ? nn.functional.linear(input, weight, bias)
            : nn.functional.linear(Rows(input), weight, bias).view(OutputShape(input, weight.shape[0]));

    private static Tensor Rows(Tensor input) => input.reshape(-1, input.shape[^1]);

    private static long[] OutputShape(Tensor input, long width) => [.. input.shape[..^1], width];
}
