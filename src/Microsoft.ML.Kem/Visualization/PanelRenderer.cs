using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Tasks;

namespace Microsoft.ML.Kem.Visualization;

/// <summary>
/// Renders comparison panels as RGB PNGs: one row per task, columns input | ground truth | prediction.
/// Class maps use the PASCAL VOC palette (ignore = white), depth a shared gray ramp (near = bright),
/// normals (n + 1)/2 as RGB, probabilities and 0/1 maps as gray.
/// </summary>
public static class PanelRenderer
{
    private const int Gap = 2;

    /// <summary>One task's row: label P×H×W and prediction in the evaluator's layout (class index, metres, probability, normals).</summary>
    public sealed record Row(TaskSpec Task, float[] Label, float[] Prediction);

    /// <summary>Writes the panel for one image (pixels 3×H×W, values 0..255) to <paramref name="path"/>.</summary>
    public static void Write(string path, ReadOnlySpan<float> pixels, int height, int width, IReadOnlyList<Row> rows)
    {
        int panelW = 3 * width + 2 * Gap, panelH = rows.Count * height + (rows.Count - 1) * Gap;
        var rgb = new byte[panelW * panelH * 3];
        Array.Fill(rgb, (byte)64);
        var input = ImageTile(pixels, height, width);
        for (int r = 0; r < rows.Count; r++)
        {
            int top = r * (height + Gap);
            float depthMax = rows[r].Task.Kind == TaskKind.Depth ? MaxValid(rows[r].Label) : 1f;
            Blit(rgb, panelW, input, width, height, 0, top);
            Blit(rgb, panelW, Colourise(rows[r].Task, rows[r].Label, height, width, depthMax), width, height, width + Gap, top);
            Blit(rgb, panelW, Colourise(rows[r].Task, rows[r].Prediction, height, width, depthMax), width, height, 2 * (width + Gap), top);
        }
        PngCodec.WriteRgb(path, rgb, panelW, panelH);
    }

    /// <summary>RGB (H×W×3) colours of a map of <paramref name="task"/>.</summary>
    public static byte[] Colourise(TaskSpec task, float[] map, int height, int width, float depthMax = 10f)
    {
        int n = height * width;
        var rgb = new byte[n * 3];
        var palette = PngCodec.DefaultPalette;
        for (int i = 0; i < n; i++)
        {
            float v = map[i];
            (byte R, byte G, byte B) c = task.Kind switch
            {
                TaskKind.SemanticSegmentation or TaskKind.Parts when v == TaskSpec.IgnoreLabel => (255, 255, 255),
                TaskKind.SemanticSegmentation or TaskKind.Parts => (palette[3 * (int)v], palette[3 * (int)v + 1], palette[3 * (int)v + 2]),
                TaskKind.Normals => (Unit(map[i]), Unit(map[n + i]), Unit(map[2 * n + i])),
                TaskKind.Depth when v <= 0 || v == TaskSpec.IgnoreLabel => (0, 0, 0),
                TaskKind.Depth => Gray(1f - v / depthMax),
                _ when v == TaskSpec.IgnoreLabel => (255, 0, 255),
                _ => Gray(v),
            };
            (rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) = c;
        }
        return rgb;
    }

    private static byte Unit(float v) => (byte)Math.Clamp((v + 1f) * 127.5f, 0f, 255f);
    private static (byte, byte, byte) Gray(float v) { byte g = (byte)Math.Clamp(v * 255f, 0f, 255f); return (g, g, g); }

    private static float MaxValid(float[] depth)
    {
        float max = 1e-3f;
        foreach (var v in depth) if (v != TaskSpec.IgnoreLabel && v > max) max = v;
        return max;
    }

    private static byte[] ImageTile(ReadOnlySpan<float> pixels, int height, int width)
    {
        int n = height * width;
        var rgb = new byte[3 * n];
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) rgb[3 * i + c] = (byte)Math.Clamp(pixels[c * n + i], 0f, 255f);
        return rgb;
    }

    private static void Blit(byte[] target, int targetWidth, byte[] tile, int width, int height, int left, int top)
    {
        for (int y = 0; y < height; y++)
            Array.Copy(tile, y * width * 3, target, ((top + y) * targetWidth + left) * 3, width * 3);
    }
}
