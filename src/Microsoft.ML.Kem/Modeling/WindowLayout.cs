using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>
/// The w×w windows of an r×c token grid as Swin cuts them (MODEL-SPEC §1 `Window`): zero padding to multiples of w, a cyclic
/// shift by −<see cref="Shift"/>, the partition into windows and its inverse, and the relative position bias with the shift
/// mask. Shared by <see cref="SwinBlock"/> and MTFormer's windowed cross-task attention.
/// </summary>
/// <param name="Rows">Grid rows r.</param>
/// <param name="Cols">Grid columns c.</param>
/// <param name="Window">Window side w.</param>
/// <param name="Shift">Cyclic shift (0, or ⌊w/2⌋ for the shifted blocks); use <see cref="SwinBlock.EffectiveShift"/>.</param>
internal readonly record struct WindowLayout(int Rows, int Cols, int Window, int Shift)
{
    /// <summary>Rows after padding to a multiple of w.</summary>
    public long PaddedRows => (Rows + Window - 1) / Window * Window;

    /// <summary>Columns after padding to a multiple of w.</summary>
    public long PaddedCols => (Cols + Window - 1) / Window * Window;

    /// <summary>Tokens per window, w².</summary>
    public long Length => (long)Window * Window;

    /// <summary>Windows per image.</summary>
    public long WindowsPerImage => PaddedRows / Window * (PaddedCols / Window);

    private bool Padded => PaddedRows != Rows || PaddedCols != Cols;

    /// <summary>Tokens B×(r·c)×C, row-major → windows (B·nW)×w²×C (padded with zeros, rolled by −shift).</summary>
    public Tensor Partition(Tensor tokens)
    {
        var (batch, width) = (tokens.shape[0], tokens.shape[2]);
        var grid = tokens.reshape(batch, Rows, Cols, width);                                        // B×r×c×C
        if (Padded) grid = nn.functional.pad(grid, [0, 0, 0, PaddedCols - Cols, 0, PaddedRows - Rows]);   // B×R×C'×C
        if (Shift > 0) grid = grid.roll([-Shift, -Shift], [1, 2]);
        return grid.reshape(batch, PaddedRows / Window, Window, PaddedCols / Window, Window, width)
            .permute(0, 1, 3, 2, 4, 5).reshape(batch * WindowsPerImage, Length, width);             // (B·nW)×w²×C
    }

    /// <summary><see cref="Partition"/> inverted: windows (B·nW)×w²×C → tokens B×(r·c)×C (rolled back, cropped).</summary>
    public Tensor Reverse(Tensor windows, long batch)
    {
        var width = windows.shape[2];
        var grid = windows.reshape(batch, PaddedRows / Window, PaddedCols / Window, Window, Window, width)
            .permute(0, 1, 3, 2, 4, 5).reshape(batch, PaddedRows, PaddedCols, width);               // B×R×C'×C
        if (Shift > 0) grid = grid.roll([Shift, Shift], [1, 2]);
        if (Padded) grid = grid.narrow(1, 0, Rows).narrow(2, 0, Cols);
        return grid.reshape(batch, (long)Rows * Cols, width);
    }

    /// <summary>
    /// The additive score bias of every window: the (2w−1)²×h <paramref name="table"/> gathered by the w²×w² <paramref name="index"/>
    /// (<see cref="SwinBlock.RelativePositionIndex"/>), 1×h×w²×w² when unshifted; with a shift, plus the windows×1×w²×w²
    /// <paramref name="mask"/> (<see cref="SwinBlock.ShiftMask"/>) for each of <paramref name="batch"/> images, (B·nW)×h×w²×w².
    /// </summary>
    public Tensor Bias(Tensor table, Tensor index, Tensor mask, int heads, long batch)
    {
        var bias = table.index_select(0, index.flatten()).reshape(Length, Length, heads).permute(2, 0, 1).unsqueeze(0);   // 1×h×w²×w²
        if (Shift == 0) return bias;
        return (bias + mask).unsqueeze(0).expand(batch, -1, -1, -1, -1).reshape(batch * WindowsPerImage, heads, Length, Length);
    }
}
