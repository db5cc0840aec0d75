using System.Diagnostics;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Kem.Bench;

/// <summary>
/// <c>--probe</c>: where the host time of the whole step goes (issue #6: the C# forward is bound by its host time on
/// CUDA while the twin's is not). Two diagnostics, the twin runs the same (bench/twin/bench.py, run_probe):
/// <list type="number">
/// <item>rows <c>bench = op</c>: the host cost of one op of each kind the network's forward runs, on tiny tensors in the
/// step's dtype (so that the GPU keeps up and only the host counts): R calls back to back in one dispose scope,
/// disposed at the end as the step's scope is, then one device synchronisation; <c>host_us</c> = time to return / R;</item>
/// <item>rows <c>bench = sync</c>: every part of the KEM step at the first task count (as <c>--segments</c> and
/// <c>--phases</c>) timed on the host twice, once with an idle GPU (<c>host_ms</c>) and once right after ~40 ms of
/// matrix products were queued (<c>host_loaded_ms</c>). A part that waits for the GPU somewhere (a host
/// synchronisation) returns only after the queued products are done, so its loaded time grows by about
/// <c>preload_ms</c>; a part without one returns as fast as on an idle GPU.</item>
/// </list>
/// </summary>
internal static class HostProbe
{
    private const int Calls = 400;

    public static void Run(Config c, Gpu gpu, Results results, Budget budget)
    {
        var type = gpu.IsCuda ? ScalarType.BFloat16 : ScalarType.Float32;
        foreach (var (name, op) in Ops(gpu.Device, type))
        {
            var row = new Dictionary<string, object?> { ["bench"] = "op", ["op"] = name, ["dtype"] = type == ScalarType.BFloat16 ? "bf16" : "fp32", ["device"] = gpu.Name, ["calls"] = Calls };
            results.Write(row, budget, () =>
            {
                var best = double.PositiveInfinity;
                for (int pass = 0; pass < 4; pass++)                 // pass 0 warms up; the best of the other three
                {
                    gpu.Sync();
                    var sw = Stopwatch.StartNew();
                    using (var scope = NewDisposeScope())
                        for (int i = 0; i < Calls; i++) op();
                    var us = sw.Elapsed.TotalMilliseconds * 1000 / Calls;
                    gpu.Sync();
                    if (pass > 0) best = Math.Min(best, us);
                }
                row["status"] = "ok";
                row["host_us"] = best;
            });
        }
        Sync(c, gpu, results, budget);
    }

    /// <summary>The op kinds of the network's forward and losses, each on tensors of a few hundred values.</summary>
    private static (string Name, Action Op)[] Ops(Device device, ScalarType type)
    {
        Tensor R(params long[] shape) => randn(shape, dtype: type, device: device);
        var (x, y) = (R(2, 16, 32), R(2, 16, 32));
        var (w, b, w2) = (R(96, 32), R(96), R(64, 32));
        var (gamma, beta) = (ones(32, dtype: type, device: device), zeros(32, dtype: type, device: device));
        var (q, k, v) = (R(2, 4, 16, 8), R(2, 4, 16, 8), R(2, 4, 16, 8));
        var map = R(2, 32, 4, 8);
        var (cw, cb) = (R(32, 32, 1, 1), R(32));
        var (mean, variance) = (zeros(32, dtype: type, device: device), ones(32, dtype: type, device: device));
        var mask = rand(2, 16, 32, device: device).gt(0.5);
        var zero = zeros(Array.Empty<long>(), dtype: type, device: device);
        var logits = randn(2, 5, 4, 8, device: device);
        var target = randint(0, 5, [2, 4, 8], device: device);
        var (rows, yt, slotBias) = (R(32, 32), R(2, 32, 16), R(16));
        var xg = R(2, 16, 32).requires_grad_(true);
        var wg = R(32, 32).requires_grad_(true);
        return
        [
            ("add", () => _ = x + y),
            ("mul_scalar", () => { using var s = 0.5.ToScalar(); _ = x.mul(s); }),
            ("linear", () => _ = F.linear(x, w, b)),
            ("linear_rows", () => _ = F.linear(x.reshape(-1, 32), w, b).view(2, 16, 96)),
            ("addmm", () => _ = F.linear(rows, w, b)),
            ("mm", () => _ = rows.mm(w.t())),
            ("bmm", () => _ = x.bmm(yt)),
            ("baddbmm", () => _ = x.baddbmm(yt, slotBias)),
            ("layer_norm", () => _ = F.layer_norm(x, [32], gamma, beta)),
            ("gelu", () => _ = F.gelu(x)),
            ("softmax", () => _ = x.softmax(-1)),
            ("matmul_4d", () => _ = q.matmul(k.transpose(-2, -1))),
            ("sdpa", () => _ = F.scaled_dot_product_attention(q, k, v)),
            ("merge_heads", () => _ = q.transpose(1, 2).reshape(2, 16, 32)),
            ("cat_weights", () => _ = cat([w, w2], 0)),
            ("chunk3_views", () => _ = x.chunk(4, -1)),
            ("conv1x1", () => _ = F.conv2d(map, cw, cb)),
            ("batch_norm_train", () => _ = F.batch_norm(map, mean, variance, gamma, beta, training: true)),
            ("relu", () => _ = F.relu(map)),
            ("interpolate", () => _ = F.interpolate(map, scale_factor: [2, 2], mode: InterpolationMode.Bilinear, align_corners: true)),
            ("stack2", () => _ = stack([x, y], 1)),
            ("to_fp32", () => _ = x.to(ScalarType.Float32)),
            ("where", () => _ = where(mask, x, zero)),
            ("sum", () => _ = x.sum()),
            ("cross_entropy", () => _ = F.cross_entropy(logits, target, reduction: nn.Reduction.None)),
            ("linear_backward", () => F.linear(xg, wg).sum().backward()),
        ];
    }

    /// <summary>The KEM step's parts, each timed on the host with an idle GPU and right after ~40 ms of queued GPU work.</summary>
    private static void Sync(Config c, Gpu gpu, Results results, Budget budget)
    {
        using var a = randn(gpu.IsCuda ? 4096 : 128, gpu.IsCuda ? 4096 : 128, dtype: gpu.IsCuda ? ScalarType.BFloat16 : ScalarType.Float32, device: gpu.Device);
        void Queue(int count)                                                // matrix products, queued and not waited for
        {
            using var scope = NewDisposeScope();
            for (int i = 0; i < count; i++) a.matmul(a);
        }
        double Timed(int count)                                              // ms for count products, idle GPU to idle GPU
        {
            gpu.Sync();
            var clock = Stopwatch.StartNew();
            Queue(count);
            gpu.Sync();
            return clock.Elapsed.TotalMilliseconds;
        }
        // Products per ~40 ms of preload, calibrated once (a CPU run keeps it to one)
        int products = gpu.IsCuda ? Math.Clamp((int)(40 / Math.Max(Timed(4) / 4, 1e-3)), 1, 2000) : 1;
        var preloadMs = Timed(products);

        StepBench.ForEachPart(c, gpu, phases: true, segments: true, (bench, part, tasks, iteration) =>
        {
            var row = new Dictionary<string, object?>
            {
                ["bench"] = "sync", ["part"] = $"{bench}: {part}", ["kind"] = "kem", ["tasks"] = tasks, ["batch"] = c.Batch,
                ["image"] = $"{c.ImageHeight}x{c.ImageWidth}", ["dtype"] = gpu.IsCuda ? "bf16" : "fp32", ["device"] = gpu.Name,
            };
            results.Write(row, budget, () =>
            {
                var idle = new List<double>();
                var loaded = new List<double>();
                for (int i = 0; i < 5; i++)                                  // iteration 0 warms up
                {
                    gpu.Sync();
                    var clock = Stopwatch.StartNew();
                    iteration();
                    if (i > 0) idle.Add(clock.Elapsed.TotalMilliseconds);
                    gpu.Sync();
                    Queue(products);
                    clock.Restart();
                    iteration();
                    if (i > 0) loaded.Add(clock.Elapsed.TotalMilliseconds);
                    gpu.Sync();
                }
                idle.Sort();
                loaded.Sort();
                row["status"] = "ok";
                row["host_ms"] = idle[idle.Count / 2];
                row["host_loaded_ms"] = loaded[loaded.Count / 2];
                row["preload_ms"] = preloadMs;
            });
        });
    }
}
