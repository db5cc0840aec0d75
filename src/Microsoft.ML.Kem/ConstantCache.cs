using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem;

/// <summary>
/// Small constant tensors a hot path needs on every call (head masks, a boolean true), made once per key — device,
/// dtype, shape — and kept for the process, so that no call pays a kernel or a host→device copy for them. Each is made
/// without gradient and outside the caller's dispose scope.
/// </summary>
internal sealed class ConstantCache<TKey> where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, Tensor> made = new();

    /// <summary>The tensor for <paramref name="key"/>, made by <paramref name="make"/> on first use.</summary>
    public Tensor Get(TKey key, Func<TKey, Tensor> make) =>
        made.GetOrAdd(key, k =>
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            return make(k).DetachFromDisposeScope();
        });
}
