using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// Option <c>KemBlocks</c> &gt; 1 (MODEL-SPEC §2, step 3): several Retrieve/Write/Broadcast rounds in a row,
/// X ← KEM_r(X) for r = 0…KemBlocks−1, each round a <see cref="KnowledgeExtraction"/> with its own R_0 and weights
/// (state_dict keys <c>rounds.r.…</c>). <see cref="InteractionFactory"/> builds it only for KemBlocks &gt; 1, so a
/// one-round network keeps the plain module and its keys.
/// </summary>
public sealed class KemRounds : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<KnowledgeExtraction> rounds;

    /// <summary>Builds <see cref="InteractionOptions.KemBlocks"/> rounds of KEM or sKEM (see <see cref="KnowledgeExtraction"/>).</summary>
    /// <param name="name">Module name.</param>
    /// <param name="width">Token width d.</param>
    /// <param name="heads">Heads h.</param>
    /// <param name="tasks">Number of tasks T.</param>
    /// <param name="options">Interaction options with KemBlocks ≥ 2; validated here.</param>
    public KemRounds(string name, int width, int heads, int tasks, InteractionOptions options) : base(name)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(width, heads, tasks);
        if (options.KemBlocks < 2)
            throw new ArgumentException($"KemRounds stacks KemBlocks ≥ 2 rounds, got {options.KemBlocks}: one round is a KnowledgeExtraction (InteractionFactory.Create picks it).", nameof(options));
        var round = options with { KemBlocks = 1 };
        rounds = nn.ModuleList(Enumerable.Range(0, options.KemBlocks)
            .Select(r => new KnowledgeExtraction($"round_{r}", width, heads, tasks, round)).ToArray());
        RegisterComponents();
    }

    /// <summary>The rounds in the order they run.</summary>
    public IReadOnlyList<KnowledgeExtraction> Rounds => [.. rounds];

    /// <summary>X (B×T×n×d) → X' after every round (B×T×n×d).</summary>
    public override Tensor forward(Tensor x)
    {
        foreach (var round in rounds) x = round.call(x);
        return x;
    }

    /// <summary>Runs forward and returns every round's <see cref="KemTrace"/>; the last one's Output is the module's output.</summary>
    public IReadOnlyList<KemTrace> Trace(Tensor x)
    {
        var traces = new List<KemTrace>(rounds.Count);
        foreach (var round in rounds)
        {
            traces.Add(round.Trace(x));
            x = traces[^1].Output;
        }
        return traces;
    }
}
