using System.Runtime.InteropServices;

namespace Kem.Bench;

/// <summary>
/// One iteration captured as a CUDA graph and replayed as a single launch, through PyTorch's at::cuda::CUDAGraph
/// (bench/native/kem_cuda_graph.cpp, built on the GPU machine: TorchSharp 0.107 has no graph API). It measures what an
/// iteration costs once its launches are out of the way: the rows it gives (<c>bench = graph</c>) are a diagnostic next
/// to the eager rows, which stay the measure of the modules as the library runs them. The PyTorch twin captures the same
/// iteration with torch.cuda.graph.
/// </summary>
internal sealed class CudaGraph : IDisposable
{
    private const string Lib = "kemcudagraph";
    [DllImport(Lib)] private static extern IntPtr kem_graph_error();
    [DllImport(Lib)] private static extern int kem_stream_enter(int device, out IntPtr handle);
    [DllImport(Lib)] private static extern int kem_stream_exit(IntPtr handle);
    [DllImport(Lib)] private static extern int kem_graph_begin(out IntPtr graph);
    [DllImport(Lib)] private static extern int kem_graph_end(IntPtr graph);
    [DllImport(Lib)] private static extern int kem_graph_replay(IntPtr graph);
    [DllImport(Lib)] private static extern void kem_graph_free(IntPtr graph);

    private static readonly Lazy<bool> available = new(() =>
    {
        try { kem_graph_error(); return true; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException) { return false; }
    });

    /// <summary>True when the shim was built and loads (it needs the GPU machine's libtorch).</summary>
    public static bool Available => available.Value;

    private IntPtr graph;

    private CudaGraph(IntPtr graph) => this.graph = graph;

    /// <summary>
    /// Runs <paramref name="warmup"/> iterations and then captures one, all on a side stream of device 0 (capture needs a
    /// stream other than the default one; the warm-up there creates what the first use of a stream creates, e.g. cuBLAS
    /// workspaces). Tensors the iteration keeps (parameters, their gradients, inputs) must exist before and outlive the graph.
    /// </summary>
    public static CudaGraph Capture(Action iteration, int warmup)
    {
        Check(kem_stream_enter(0, out var side), "entering a side stream");
        try
        {
            for (int i = 0; i < warmup; i++) iteration();
            Check(kem_graph_begin(out var captured), "beginning the capture");
            Exception? failure = null;
            try { iteration(); }
            catch (Exception e) { failure = e; }
            int ended = kem_graph_end(captured);   // always end a started capture, or the stream stays in capture mode
            if (failure is not null || ended != 0)
            {
                var message = ended != 0 ? Error() : "";
                kem_graph_free(captured);
                throw new InvalidOperationException($"CUDA graph capture failed: {failure?.Message.Split('\n')[0] ?? message}", failure);
            }
            return new CudaGraph(captured);
        }
        finally
        {
            Check(kem_stream_exit(side), "leaving the side stream");
        }
    }

    /// <summary>Launches the captured iteration on the current stream.</summary>
    public void Replay()
    {
        ObjectDisposedException.ThrowIf(graph == IntPtr.Zero, this);
        Check(kem_graph_replay(graph), "replaying");
    }

    public void Dispose()
    {
        if (graph == IntPtr.Zero) return;
        kem_graph_free(graph);
        graph = IntPtr.Zero;
    }

    private static string Error() => Marshal.PtrToStringUTF8(kem_graph_error()) ?? "";

    private static void Check(int result, string what)
    {
        if (result != 0) throw new InvalidOperationException($"CUDA graph shim, {what}: {Error().Split('\n')[0]}");
    }
}
