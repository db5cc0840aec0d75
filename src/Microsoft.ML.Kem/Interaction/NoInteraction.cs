using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary><see cref="InteractionKind.None"/>: the tasks do not interact; forward returns its input X (B×T×n×d) unchanged.</summary>
public sealed class NoInteraction : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the identity interaction.</summary>
    public NoInteraction(string name) : base(name) { }

    /// <summary>Returns <paramref name="x"/> itself.</summary>
    public override Tensor forward(Tensor x) => x;
}
