using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Interaction;

/// <summary>
/// <see cref="MemoryUpdate.Gated"/>, the full SGW memory update (MODEL-SPEC §2 "Memory update"), after Retrieve produced
/// R = TopKSoftmax_k(S) V Wo_r:
/// <code>
/// R     ← LN(R_0 + R)
/// R     ← LN(R + MLP(R)),                  MLP = 2 × [Lin(d→d), ReLU]
/// i, f  = Lin(x̄) + Lin(tanh R_0)            x̄ = mean over the N tokens of LN_x(F)
/// R_new = σ(i)·tanh(R) + σ(f)·R_0
/// </code>
/// "inputs" of the gates is read as the SGW code reads it: the tokens the memory just read from, pooled over the token
/// axis into one vector per sample and broadcast over the m slots (SGW averages its projected specialist tokens; here the
/// same LN_x(F) that Retrieve projects, without SGW's extra ReLU(w ⊙ x) scaling, since the spec writes a plain Lin).
/// R_0 is the learned m×d slot matrix, shared by the batch. The gate projections are Lin(d→2d) each, split into the input
/// gate i and the forget gate f; plain nn.Linear biases, no extra forget-gate bias. The two MLP layers have their own
/// weights (SGW's code reuses one Lin twice).
/// </summary>
public sealed class GatedMemoryUpdate : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    // Children in the order they run.
    private readonly LayerNorm normAttended;   // LN(R_0 + R)
    private readonly Sequential mlp;           // 2 × [Lin(d→d), ReLU]
    private readonly LayerNorm normRefined;    // LN(R + MLP(R))
    private readonly Linear inputGate;         // Lin(x̄): d → [i | f]
    private readonly Linear memoryGate;        // Lin(tanh R_0): d → [i | f]

    /// <summary>Creates the update for memory width <paramref name="width"/> = d.</summary>
    public GatedMemoryUpdate(string name, int width) : base(name)
    {
        normAttended = nn.LayerNorm(width);
        mlp = nn.Sequential(("fc1", nn.Linear(width, width)), ("act1", nn.ReLU()), ("fc2", nn.Linear(width, width)), ("act2", nn.ReLU()));
        normRefined = nn.LayerNorm(width);
        inputGate = nn.Linear(width, 2 * width);
        memoryGate = nn.Linear(width, 2 * width);
        RegisterComponents();
    }

    /// <summary>R_0 (m×d), R (B×m×d), pooled tokens x̄ (B×d) → R_new (B×m×d).</summary>
    public override Tensor forward(Tensor slots, Tensor retrieved, Tensor pooledTokens)
    {
        var attended = normAttended.call(slots + retrieved);                                    // R ← LN(R_0 + R)
        var refined = normRefined.call(attended + mlp.call(attended));                          // R ← LN(R + MLP(R))
        // B×1×2d + m×2d → B×m×2d, then [i | f]
        var gates = (inputGate.call(pooledTokens).unsqueeze(1) + memoryGate.Apply(slots.tanh())).chunk(2, -1);
        return gates[0].sigmoid() * refined.tanh() + gates[1].sigmoid() * slots;                 // σ(i)·tanh(R) + σ(f)·R_0
    }
}

/// <summary>
/// Option <c>MemoryMlp</c> for the <see cref="MemoryUpdate.Residual"/> and <see cref="MemoryUpdate.Replace"/> updates
/// (MODEL-SPEC §2): R_new ← R_new + MLP(LN(R_new)), MLP = Lin(d→4d) → GELU → Lin(4d→d), a pre-norm transformer MLP on
/// the slots only.
/// </summary>
public sealed class ResidualMemoryMlp : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear fc1;
    private readonly Linear fc2;

    /// <summary>Creates the MLP for memory width <paramref name="width"/> = d (hidden 4d).</summary>
    public ResidualMemoryMlp(string name, int width) : base(name)
    {
        norm = nn.LayerNorm(width);
        fc1 = nn.Linear(width, 4 * width);
        fc2 = nn.Linear(4 * width, width);
        RegisterComponents();
    }

    /// <summary>R_new (B×m×d) → R_new + MLP(LN(R_new)).</summary>
    public override Tensor forward(Tensor memory) =>
        memory + fc2.Apply(nn.functional.gelu(fc1.Apply(norm.call(memory))));
}
