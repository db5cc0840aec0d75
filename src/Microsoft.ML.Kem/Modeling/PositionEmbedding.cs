using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>Fixed 2-D sine-cosine position embedding (MAE/ViT style), added once to the tokens (MODEL-SPEC §1, `Global`).</summary>
public static class PositionEmbedding
{
    /// <summary>Returns a (rows·cols)×d table, row-major over the grid; d must be divisible by 4.</summary>
    public static Tensor SineCosine2D(int rows, int cols, int width)
    {
        if (width % 4 != 0) throw new ArgumentException($"Width {width} must be divisible by 4 for the 2-D sine-cosine position embedding.");
        int quarter = width / 4;
        var table = new float[rows * cols * width];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                int at = (r * cols + c) * width;
                for (int i = 0; i < quarter; i++)
                {
                    double omega = 1.0 / Math.Pow(10000, (double)i / quarter);
                    // first half encodes the column (x), second half the row (y)
                    table[at + i] = (float)Math.Sin(c * omega);
                    table[at + quarter + i] = (float)Math.Cos(c * omega);
                    table[at + 2 * quarter + i] = (float)Math.Sin(r * omega);
                    table[at + 3 * quarter + i] = (float)Math.Cos(r * omega);
                }
            }
        return torch.tensor(table, new long[] { rows * cols, width });
    }
}
