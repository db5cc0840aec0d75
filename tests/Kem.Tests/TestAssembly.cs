using TorchSharp;

namespace Kem.Tests;

[TestClass]
public static class TestAssembly
{
    /// <summary>
    /// One libtorch intra-op thread for the whole run: every tensor in the tests is tiny, and on a shared or busy
    /// 2-core machine libtorch's spinning worker threads made the suite many times slower than one thread.
    /// </summary>
    [AssemblyInitialize]
    public static void OneTorchThread(TestContext _) => torch.set_num_threads(1);
}
