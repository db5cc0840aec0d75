// CPU latency of one image through the same trained-shape network, ONNX Runtime (the graph a model zip carries) vs
// TorchSharp (Inference.Predict), median of N runs after warm-up, at 128×128 and 448×576. Both sides include their
// pre/post-processing and the copy of every output to managed arrays, and use the same number of threads. The two
// runtimes alternate run by run, so a busy machine slows both alike.
// Usage: dotnet run -c Release --project bench/Kem.Bench.Onnx -- [--runs 20] [--warmup 3] [--threads N]
using System.Diagnostics;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx;
using Microsoft.ML.Kem.Tasks;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;

int runs = 20, warmup = 3, threads = Environment.ProcessorCount;
for (int i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--runs": runs = int.Parse(args[i + 1]); break;
        case "--warmup": warmup = int.Parse(args[i + 1]); break;
        case "--threads": threads = int.Parse(args[i + 1]); break;
        default: throw new ArgumentException($"Unknown option {args[i]}. Options: --runs --warmup --threads.");
    }
}
torch.set_num_threads(threads);
var tasks = new[] { TaskSpec.Segmentation(40), TaskSpec.DepthTask() };
var sizes = new[]
{
    ("128x128, Small (TinyViT p8, d128, sKEM m20 k3)", MultiTaskNetworkOptions.Small(128, 128, tasks)),
    // 448×576 uses the Gpu448 grid (stride 16) with the Small widths: stride 8 would put 4032 tokens through global attention.
    ("448x576, Small widths, TokenStride 16", MultiTaskNetworkOptions.Small(448, 576, tasks) with { TokenStride = 16 }),
};
Console.WriteLine($"CPU, {threads} thread(s), median of {runs} runs after {warmup} warm-up runs; onnxruntime {typeof(InferenceSession).Assembly.GetName().Version}, TorchSharp {typeof(torch).Assembly.GetName().Version}.");
Console.WriteLine($"{"image",-48}{"TorchSharp ms",15}{"ONNX Runtime ms",17}{"ORT / Torch",13}");
foreach (var (name, options) in sizes)
{
    torch.manual_seed(1);
    using var network = new MultiTaskNetwork(options);
    network.eval();
    var rng = new Random(1);
    var pixels = Enumerable.Range(0, 3 * options.ImageHeight * options.ImageWidth).Select(_ => (float)rng.Next(256)).ToArray();

    using var sessionOptions = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
    using var session = new InferenceSession(KemOnnx.Export(network, new OnnxExportOptions { Batched = false }), sessionOptions);
    var input = new DenseTensor<float>(pixels, new[] { 3, options.ImageHeight, options.ImageWidth });
    var (torchMs, onnxMs) = Medians(runs, warmup, () => Inference.Predict(network, pixels, 1), () =>
    {
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("Image", input) });
        foreach (var r in results)
            _ = r.Value is Tensor<float> f ? f.ToArray().Length : ((Tensor<int>)r.Value).ToArray().Length;
    });
    Console.WriteLine($"{name,-48}{torchMs,15:F1}{onnxMs,17:F1}{onnxMs / torchMs,13:F2}");
}

// Median wall time of each action over `runs` alternating runs, after `warmup` runs of each.
static (double A, double B) Medians(int runs, int warmup, Action a, Action b)
{
    for (int i = 0; i < warmup; i++) { a(); b(); }
    var (timesA, timesB) = (new double[runs], new double[runs]);
    for (int i = 0; i < runs; i++)
    {
        timesA[i] = Time(a);
        timesB[i] = Time(b);
    }
    return (Median(timesA), Median(timesB));
}

static double Time(Action run)
{
    var clock = Stopwatch.StartNew();
    run();
    return clock.Elapsed.TotalMilliseconds;
}

static double Median(double[] times)
{
    Array.Sort(times);
    int n = times.Length;
    return n % 2 == 1 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
}
