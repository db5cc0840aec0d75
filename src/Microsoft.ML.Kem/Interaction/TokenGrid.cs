using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>Conversions between feature maps and row-major token sequences (MODEL-SPEC §1 a9, d2).</summary>
public static class TokenGrid
{
    /// <summary>Map B×C×r×c → tokens B×(r·c)×C, row-major.</summary>
    public static Tensor ToTokens(Tensor map) => map.flatten(2).transpose(1, 2);

    /// <summary>Tokens B×(r·c)×C (row-major) → map B×C×r×c.</summary>
    public static Tensor ToMap(Tensor tokens, long rows, long cols) =>
        tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], rows, cols);
}
