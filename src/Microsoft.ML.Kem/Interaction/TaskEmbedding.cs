using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// Option <c>TaskEmbedding</c> (MODEL-SPEC §1): a learned vector e_t ∈ ℝ^d added to every token of task t
/// inside the interaction only. forward(X B×T×n×d) = X + e (broadcast over batch and tokens).
/// </summary>
public sealed class TaskEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Parameter vectors;   // T×d

    /// <summary>Creates T = <paramref name="tasks"/> vectors of width d, truncated-normal std 0.02.</summary>
    public TaskEmbedding(string name, int tasks, int width) : base(name)
    {
        vectors = new Parameter(TruncatedNormal.Fill(empty(tasks, width), std: 0.02));
        RegisterComponents();
    }

    /// <summary>X B×T×n×d → X + e_t on task t's tokens.</summary>
    public override Tensor forward(Tensor x) => x + vectors.unsqueeze(1);   // T×d → T×1×d
}
