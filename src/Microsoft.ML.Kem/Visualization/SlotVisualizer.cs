using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Visualization;

/// <summary>
/// One token a memory slot retrieved: slot and head, its rank among the slot's picks (0 = largest weight), the column
/// <see cref="Token"/> of the retrieve weights (task-major: task = Token / n), and that token's task and patch position
/// on the token grid (<see cref="Row"/>, <see cref="Col"/>; pixels [Row·s, (Row+1)·s) × [Col·s, (Col+1)·s) at stride s).
/// </summary>
public readonly record struct SlotPick(int Slot, int Head, int Rank, int Token, int Task, int Row, int Col, float Weight);

/// <summary>
/// Which input patches every memory slot of a KEM read for one image: for each (slot, head) the top-k tokens of the
/// retrieve weights A (MODEL-SPEC §2, Retrieve), in slot-, head-, rank-major order.
/// </summary>
/// <param name="Slots">Memory slots m.</param>
/// <param name="Heads">Heads h.</param>
/// <param name="TopK">Picks per (slot, head).</param>
/// <param name="TaskNames">Task names, in token-block order.</param>
/// <param name="GridRows">Token grid rows (H / s).</param>
/// <param name="GridCols">Token grid columns (W / s).</param>
/// <param name="Stride">Token stride s in pixels.</param>
/// <param name="Picks">m·h·k picks.</param>
public sealed record SlotSelection(int Slots, int Heads, int TopK, IReadOnlyList<string> TaskNames, int GridRows, int GridCols, int Stride, IReadOnlyList<SlotPick> Picks)
{
    /// <summary>The k picks of one slot and head, largest weight first.</summary>
    public IEnumerable<SlotPick> For(int slot, int head) =>
        Picks.Skip((slot * Heads + head) * TopK).Take(TopK);

    /// <summary>Share of all retrieve weight (over slots, heads and picks) drawn from each task's tokens.</summary>
    public double[] TaskShares()
    {
        var shares = new double[TaskNames.Count];
        foreach (var pick in Picks) shares[pick.Task] += pick.Weight;
        double total = shares.Sum();
        return shares.Select(s => total > 0 ? s / total : 0).ToArray();
    }
}

/// <summary>Drawing settings of <see cref="SlotVisualizer.WritePng"/>.</summary>
public sealed record SlotImageOptions
{
    /// <summary>Integer upscaling of every tile; 0 picks the smallest scale that makes a tile at least 128 px wide.</summary>
    public int Scale { get; init; }
    /// <summary>Brightness of the patches a slot did not pick (0 black … 1 unchanged).</summary>
    public float Dim { get; init; } = 0.3f;
}

/// <summary>
/// Slot visualisation (the paper names its absence as a limitation, §5.4): which input patches each KEM memory slot
/// retrieves. <see cref="Select(MultiTaskNetwork, Tensor)"/> runs a trained network up to its interaction and returns
/// the top-k retrieve indices per slot and head with their task and patch; <see cref="WritePng"/> draws them.
/// </summary>
public static class SlotVisualizer
{
    /// <summary>Colour of every task's outlines, by task index (cycled).</summary>
    public static IReadOnlyList<(byte R, byte G, byte B)> TaskColours { get; } =
        [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (128, 128, 0)];

    private const int Gap = 4, Stripe = 4;

    /// <summary>
    /// The slot selections of a batch: <paramref name="images"/> B×3×H×W raw pixels (as for <c>forward</c>) → one
    /// <see cref="SlotSelection"/> per image. The network must use KEM or sKEM; it is put in eval mode.
    /// </summary>
    public static SlotSelection[] Select(MultiTaskNetwork network, Tensor images)
    {
        // with KemBlocks > 1 the first round's: it reads the task encoders' tokens, so its picks are image patches
        var kem = network.Interaction switch
        {
            KnowledgeExtraction one => one,
            KemRounds rounds => rounds.Rounds[0],
            _ => throw new ArgumentException($"Slot selection needs a KEM or sKEM interaction; this network uses {network.Options.Interaction.Kind}.", nameof(network)),
        };
        var o = network.Options;
        using var lease = NativeCallGuard.Enter();   // no collection while the native calls below run (see NativeCallGuard)
        network.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = network.parameters().First().device;
        var trace = kem.Trace(network.EncodeTasks(images.to(device)));
        return FromRetrieveWeights(trace.RetrieveWeights, PicksPerSlot(o.Interaction, o.Tasks.Count, o.TokensPerTask),
            o.Tasks.Select(t => t.Name).ToArray(), o.ImageHeight / o.TokenStride, o.ImageWidth / o.TokenStride, o.TokenStride);
    }

    /// <summary>The slot selection of one image, <paramref name="pixels"/> 3×H×W raw pixels.</summary>
    public static SlotSelection Select(MultiTaskNetwork network, ReadOnlySpan<float> pixels)
    {
        var o = network.Options;
        if (pixels.Length != 3 * o.ImageHeight * o.ImageWidth)
            throw new ArgumentException($"Expected 3×{o.ImageHeight}×{o.ImageWidth} = {3 * o.ImageHeight * o.ImageWidth} pixel values, got {pixels.Length}.", nameof(pixels));
        using var scope = NewDisposeScope();
        return Select(network, tensor(pixels.ToArray(), [1, 3, o.ImageHeight, o.ImageWidth]))[0];
    }

    /// <summary>
    /// Picks from retrieve weights A (B×h×m×N, N = T·n task-major, n = gridRows·gridCols row-major): for every image,
    /// slot and head the <paramref name="topK"/> largest weights (torch.topk, sorted), mapped to task and grid position.
    /// </summary>
    public static SlotSelection[] FromRetrieveWeights(Tensor retrieveWeights, int topK, IReadOnlyList<string> taskNames, int gridRows, int gridCols, int stride)
    {
        if (retrieveWeights.dim() != 4) throw new ArgumentException($"Retrieve weights must be B×h×m×N, got [{string.Join("×", retrieveWeights.shape)}].", nameof(retrieveWeights));
        var (batch, heads, slots, tokens) = ((int)retrieveWeights.shape[0], (int)retrieveWeights.shape[1], (int)retrieveWeights.shape[2], (int)retrieveWeights.shape[3]);
        int perTask = gridRows * gridCols;
        if (tokens != taskNames.Count * perTask)
            throw new ArgumentException($"Retrieve weights have {tokens} tokens, but {taskNames.Count} tasks × {gridRows}×{gridCols} grid = {taskNames.Count * perTask}.", nameof(retrieveWeights));
        if (topK < 1) throw new ArgumentOutOfRangeException(nameof(topK), topK, "topK must be ≥ 1.");
        int k = Math.Min(topK, tokens);
        using var scope = NewDisposeScope();
        var (values, indices) = retrieveWeights.detach().to_type(ScalarType.Float32).cpu().topk(k, dim: -1, largest: true, sorted: true);   // B×h×m×k
        // B×h×m×k → B×m×h×k so that picks come out slot-, head-, rank-major
        var weights = values.permute(0, 2, 1, 3).contiguous().data<float>().ToArray();
        var columns = indices.permute(0, 2, 1, 3).contiguous().data<long>().ToArray();
        var result = new SlotSelection[batch];
        int perImage = slots * heads * k;
        for (int b = 0; b < batch; b++)
        {
            var picks = new SlotPick[perImage];
            for (int i = 0; i < perImage; i++)
            {
                int at = b * perImage + i, token = (int)columns[at], cell = token % perTask;
                picks[i] = new SlotPick(i / (heads * k), i / k % heads, i % k, token, token / perTask, cell / gridCols, cell % gridCols, weights[at]);
            }
            result[b] = new SlotSelection(slots, heads, k, taskNames, gridRows, gridCols, stride, picks);
        }
        return result;
    }

    /// <summary>
    /// Non-zero retrieve weights per (slot, head) row: k (joint top-k), k·T (per-task top-k), at most N. With
    /// <see cref="TopKAxis.Slots"/> a row holds however many tokens chose the slot; its k largest are picked.
    /// </summary>
    public static int PicksPerSlot(InteractionOptions options, int tasks, int tokensPerTask) =>
        Math.Min(options.TopKScope == TopKScope.PerTask ? options.TopK * tasks : options.TopK, tasks * tokensPerTask);

    /// <summary>
    /// Writes a PNG grid for one image (<paramref name="pixels"/> 3×H×W, 0 … 255): one row per head, the first column the
    /// image, then one tile per memory slot. In a slot's tile the patches it did not pick are dimmed, every picked patch is
    /// outlined in its task's colour (<see cref="TaskColours"/>; a patch picked from several tasks gets nested outlines),
    /// and a stripe above the tile splits its width by the share of the slot's retrieve weight from each task.
    /// </summary>
    public static void WritePng(string path, ReadOnlySpan<float> pixels, int height, int width, SlotSelection selection, SlotImageOptions? options = null)
    {
        options ??= new SlotImageOptions();
        if (pixels.Length != 3 * height * width) throw new ArgumentException($"Expected 3×{height}×{width} pixel values, got {pixels.Length}.", nameof(pixels));
        if (selection.GridRows * selection.Stride > height || selection.GridCols * selection.Stride > width)
            throw new ArgumentException($"The selection's {selection.GridRows}×{selection.GridCols} grid at stride {selection.Stride} does not fit a {height}×{width} image.", nameof(selection));
        int scale = options.Scale > 0 ? options.Scale : Math.Max(1, (128 + width - 1) / width);
        int tileW = width * scale, tileH = height * scale, cellH = Stripe + 1 + tileH;
        int columns = 1 + selection.Slots, canvasW = columns * tileW + (columns - 1) * Gap, canvasH = selection.Heads * cellH + (selection.Heads - 1) * Gap;
        var canvas = new byte[canvasW * canvasH * 3];
        Array.Fill(canvas, (byte)255);
        var image = Upscale(pixels, height, width, scale);

        for (int head = 0; head < selection.Heads; head++)
        {
            int top = head * (cellH + Gap) + Stripe + 1;
            Blit(canvas, canvasW, image, tileW, tileH, 0, top, 1f, null);
            for (int slot = 0; slot < selection.Slots; slot++)
            {
                int left = (1 + slot) * (tileW + Gap);
                var picks = selection.For(slot, head).ToArray();
                var picked = new HashSet<(int, int)>(picks.Select(p => (p.Row, p.Col)));
                Blit(canvas, canvasW, image, tileW, tileH, left, top, options.Dim,
                    (x, y) => picked.Contains((y / scale / selection.Stride, x / scale / selection.Stride)));
                var nesting = new Dictionary<(int, int), int>();
                foreach (var pick in picks.OrderBy(p => p.Task))
                {
                    int inset = nesting.TryGetValue((pick.Row, pick.Col), out var n) ? n : 0;
                    nesting[(pick.Row, pick.Col)] = inset + 1;
                    int s = selection.Stride * scale, thickness = Math.Max(1, scale);
                    Outline(canvas, canvasW, left + pick.Col * s + inset * thickness, top + pick.Row * s + inset * thickness,
                        s - 2 * inset * thickness, thickness, TaskColours[pick.Task % TaskColours.Count]);
                }
                ShareStripe(canvas, canvasW, left, top - Stripe - 1, tileW, picks, selection.TaskNames.Count);
            }
        }
        PngCodec.WriteRgb(path, canvas, canvasW, canvasH);
    }

    private static byte[] Upscale(ReadOnlySpan<float> pixels, int height, int width, int scale)
    {
        int plane = height * width, outW = width * scale;
        var rgb = new byte[outW * height * scale * 3];
        for (int y = 0; y < height * scale; y++)
            for (int x = 0; x < outW; x++)
                for (int c = 0; c < 3; c++)
                    rgb[(y * outW + x) * 3 + c] = (byte)Math.Clamp(pixels[c * plane + (y / scale) * width + x / scale], 0f, 255f);
        return rgb;
    }

    private static void Blit(byte[] canvas, int canvasW, byte[] tile, int tileW, int tileH, int left, int top, float dim, Func<int, int, bool>? keep)
    {
        for (int y = 0; y < tileH; y++)
            for (int x = 0; x < tileW; x++)
            {
                float factor = keep is null || keep(x, y) ? 1f : dim;
                for (int c = 0; c < 3; c++)
                    canvas[((top + y) * canvasW + left + x) * 3 + c] = (byte)(tile[(y * tileW + x) * 3 + c] * factor);
            }
    }

    private static void Outline(byte[] canvas, int canvasW, int left, int top, int side, int thickness, (byte R, byte G, byte B) colour)
    {
        if (side <= 0) return;
        for (int y = top; y < top + side; y++)
            for (int x = left; x < left + side; x++)
            {
                bool edge = x < left + thickness || x >= left + side - thickness || y < top + thickness || y >= top + side - thickness;
                if (!edge) continue;
                int at = (y * canvasW + x) * 3;
                (canvas[at], canvas[at + 1], canvas[at + 2]) = colour;
            }
    }

    private static void ShareStripe(byte[] canvas, int canvasW, int left, int top, int tileW, SlotPick[] picks, int tasks)
    {
        var shares = new double[tasks];
        foreach (var pick in picks) shares[pick.Task] += pick.Weight;
        double total = shares.Sum();
        if (total <= 0) return;
        double cumulative = 0;
        int x = left;
        for (int t = 0; t < tasks; t++)
        {
            cumulative += shares[t];
            int end = left + (int)Math.Round(tileW * cumulative / total);   // cumulative rounding: the stripe ends exactly at the tile's edge
            var colour = TaskColours[t % TaskColours.Count];
            for (int y = top; y < top + Stripe; y++)
                for (int xx = x; xx < end; xx++)
                    (canvas[(y * canvasW + xx) * 3], canvas[(y * canvasW + xx) * 3 + 1], canvas[(y * canvasW + xx) * 3 + 2]) = colour;
            x = end;
        }
    }
}
