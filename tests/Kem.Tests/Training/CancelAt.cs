using Microsoft.ML.Kem.Training;

namespace Kem.Tests.Training;

/// <summary>Cancels a fit at the first progress report of <paramref name="epoch"/> (synchronously, unlike Progress&lt;T&gt;).</summary>
internal sealed class CancelAt(int epoch, CancellationTokenSource source) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value)
    {
        if (value.Epoch == epoch) source.Cancel();
    }
}
