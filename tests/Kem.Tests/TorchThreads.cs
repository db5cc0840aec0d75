using TorchSharp;

namespace Kem.Tests;

/// <summary>
/// Runs libtorch on one intra-op thread until disposed, then restores the previous count. The toy and visualisation
/// tests use it: their tensors are tiny, and on a shared, busy CPU libtorch's spinning worker threads made them
/// 10–20× slower than one thread (tests run one at a time, so the process-wide setting is safe).
/// </summary>
internal sealed class TorchThreads : IDisposable
{
    private readonly int previous = torch.get_num_threads();

    public TorchThreads(int threads = 1) => torch.set_num_threads(threads);

    public void Dispose() => torch.set_num_threads(previous);
}
