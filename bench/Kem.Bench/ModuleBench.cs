using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// Interaction modules alone (MODEL-SPEC §2–§5), forward + backward: X (requires grad) → X', then X'.backward(G) with a
/// fixed random G, in train mode. KEM, sKEM and cross-attention take task tokens B×T×n×d; the sequential design's CTAM
/// ("seq", §5) takes task maps B×T×d×h×w, h×w = n tokens: the row's image (448×576) at the stride that gives n tokens
/// (252 → 14×18 at stride 32, 1008 → 28×36 at 16, 4032 → 56×72 at 8), keys pooled to the spec's stride 16.
/// Parameter gradients are reset to none before every iteration; the input's gradient accumulates (as in the twin).
/// </summary>
internal static class ModuleBench
{
    /// <summary>The modules compared: name used in the rows → options (null: the sequential design's CTAM).</summary>
    public static readonly (string Name, InteractionOptions? Options)[] Kinds =
    [
        ("kem", new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 20, TopK = 3 }),
        ("skem", new InteractionOptions { Kind = InteractionKind.StableKem, EtfMode = EtfMode.TaskVertices, EtfInputProjection = true, MemorySlots = 20, TopK = 3 }),
        ("ca", new InteractionOptions { Kind = InteractionKind.CrossAttention }),
        ("seq", null),
    ];

    public static void Run(Config c, Gpu gpu, Results results, Budget budget)
    {
        foreach (var dtype in c.Dtypes)
        foreach (var tasks in c.TaskCounts)
        foreach (var tokens in c.TokenCounts)
        foreach (var (name, options) in Kinds.Where(k => c.Runs(k.Name)))
        {
            var row = Row(c, gpu, "module", name, tasks, tokens, dtype);
            results.Write(row, budget, () => Measure1(c, gpu, options, tasks, tokens, dtype, row));
        }
    }

    /// <summary>The kinds with CUDA-graph rows (<c>--graphs</c>).</summary>
    public static readonly string[] GraphKinds = ["kem", "skem", "ca"];

    /// <summary>
    /// <c>--graphs</c>: the same forward + backward captured once as a CUDA graph (<see cref="CudaGraph"/>) and timed as
    /// replays, rows <c>bench = graph</c>: the iteration's cost without its launches. Parameter gradients accumulate across
    /// replays instead of being reset (a reset to none cannot be replayed). CUDA with the graph shim only.
    /// </summary>
    public static void RunGraphs(Config c, Gpu gpu, Results results, Budget budget)
    {
        foreach (var dtype in c.Dtypes)
        foreach (var tasks in c.TaskCounts)
        foreach (var tokens in c.TokenCounts)
        foreach (var (name, options) in Kinds.Where(k => GraphKinds.Contains(k.Name) && c.Runs(k.Name)))
        {
            var row = Row(c, gpu, "graph", name, tasks, tokens, dtype);
            if (!gpu.IsCuda) { results.Write(Results.Skip(row, "CUDA graphs need a CUDA device")); continue; }
            if (!CudaGraph.Available) { results.Write(Results.Skip(row, "the graph shim (bench/native, libkemcudagraph.so) was not built")); continue; }
            results.Write(row, budget, () =>
            {
                using var m = Build(c, gpu, options, tasks, tokens, dtype, row);
                using var graph = CudaGraph.Capture(() =>
                {
                    using var scope = NewDisposeScope();
                    m.Module.call(m.X).backward([m.G]);
                }, warmup: 3);
                Measure.TimeInto(row, gpu, graph.Replay, c.ModuleSchedule);
                row["parameters"] = m.Module.parameters().Sum(p => p.numel());
            });
        }
    }

    /// <summary>A module of the library on the device in <paramref name="dtype"/>, train mode, with its input X (requires grad) and output gradient G.</summary>
    private sealed record Built(nn.Module<Tensor, Tensor> Module, Tensor X, Tensor G) : IDisposable
    {
        public void Dispose()
        {
            X.Dispose();
            G.Dispose();
            Module.Dispose();
        }
    }

    /// <summary>
    /// The row's module (seed 1; options null: one CTAM of the sequential design on task maps) on the device in
    /// <paramref name="dtype"/>, train mode, with its input X (requires grad) and output gradient G.
    /// </summary>
    private static Built Build(Config c, Gpu gpu, InteractionOptions? options, int tasks, int tokens, string dtype, Dictionary<string, object?> row)
    {
        var type = dtype == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        torch.manual_seed(1);
        var (module, shape) = options is null
            ? CrossTaskAttentionModule(c, tasks, tokens, row)
            : (InteractionFactory.Create("interaction", options with { MemorySlots = c.Slots, TopK = c.TopK }, c.Width, c.Heads, tasks),
               new long[] { c.Batch, tasks, tokens, c.Width });
        module.to(gpu.Device);
        module.to(type);
        module.train();
        return new Built(module, randn(shape, dtype: type, device: gpu.Device).requires_grad_(true), randn(shape, dtype: type, device: gpu.Device));
    }

    private static void Measure1(Config c, Gpu gpu, InteractionOptions? options, int tasks, int tokens, string dtype, Dictionary<string, object?> row)
    {
        using var built = Build(c, gpu, options, tasks, tokens, dtype, row);
        var (module, x, g) = (built.Module, built.X, built.G);

        void Iteration()
        {
            using var scope = NewDisposeScope();
            module.zero_grad();
            module.call(x).backward([g]);
        }

        Measure.TimeInto(row, gpu, Iteration, c.ModuleSchedule);
        row["parameters"] = module.parameters().Sum(p => p.numel());
    }

    /// <summary>The keys every module and graph row starts with.</summary>
    private static Dictionary<string, object?> Row(Config c, Gpu gpu, string bench, string kind, int tasks, int tokens, string dtype) => new()
    {
        ["bench"] = bench, ["kind"] = kind, ["tasks"] = tasks, ["tokens"] = tokens, ["batch"] = c.Batch,
        ["width"] = c.Width, ["heads"] = c.Heads, ["slots"] = c.Slots, ["topk"] = c.TopK, ["dtype"] = dtype, ["device"] = gpu.Name,
    };

    /// <summary>
    /// One CTAM (MODEL-SPEC §5) for a row of <paramref name="tokens"/> tokens per task, and its input shape B×T×d×h×w;
    /// writes the grid, stride and key pooling into <paramref name="row"/>.
    /// </summary>
    private static (nn.Module<Tensor, Tensor> Module, long[] Shape) CrossTaskAttentionModule(Config c, int tasks, int tokens, Dictionary<string, object?> row)
    {
        var (stride, rows, cols) = Grid(c, tokens)
            ?? throw new ArgumentException($"No stride gives {tokens} tokens on a {c.ImageHeight}×{c.ImageWidth} image: the seq row needs a token grid.");
        int keyPool = new SequentialAttentionOptions().KeyPoolAt(stride);   // spec default: keys pooled to stride 16
        row["grid"] = $"{rows}x{cols}";
        row["stride"] = stride;
        row["key_pool"] = keyPool;
        return (new CrossTaskAttentionModule("ctam", tasks, c.Width, c.Heads, keyPool), [c.Batch, tasks, c.Width, rows, cols]);
    }

    /// <summary>The power-of-two stride at which the configuration's image has <paramref name="tokens"/> tokens, and that grid.</summary>
    public static (int Stride, int Rows, int Cols)? Grid(Config c, int tokens)
    {
        for (int stride = 1; stride <= Math.Min(c.ImageHeight, c.ImageWidth); stride *= 2)
            if (c.ImageHeight % stride == 0 && c.ImageWidth % stride == 0 && c.ImageHeight / stride * (c.ImageWidth / stride) == tokens)
                return (stride, c.ImageHeight / stride, c.ImageWidth / stride);
        return null;
    }
}
