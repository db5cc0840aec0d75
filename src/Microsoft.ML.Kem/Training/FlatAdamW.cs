using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Training;

/// <summary>
/// AdamW (decoupled weight decay; the same element-wise update as <c>torch.optim.AdamW</c>) over all trainable
/// parameters at once, with optional bf16 working weights and fp32 master weights (MODEL-SPEC §11).
/// Every parameter is a view into one flat buffer and the gradients are gathered into one flat buffer once per step, so
/// copying bf16 gradients to the fp32 masters, clipping, the AdamW update and copying the masters back are a handful of
/// kernels whatever the number of parameters; gradient clipping keeps the norm on the device (no host synchronisation).
/// </summary>
/// <remarks>
/// Layout: masters = [module parameters (M values) | extra fp32 parameters (E values)], each parameter 64-element aligned. In fp32 mode the module's
/// parameters are views into the masters; in bf16 mode the module is cast to bf16 and its parameters are views into a
/// flat bf16 working buffer of M values. <see cref="ZeroGrad"/> sets every gradient to none, so that autograd hands each
/// parameter the gradient it computed (no copy, no per-parameter accumulation kernel); <see cref="Step"/> then
/// concatenates them into the flat gradient buffer of the same layout (a few kernels; a parameter without a gradient
/// counts as zero). Gradients used to be views into that buffer, which made backward add into each of them in place:
/// one extra kernel per parameter per step, about 200 in the 448×576 bench network.
/// </remarks>
public sealed class FlatAdamW : IDisposable
{
    private readonly Tensor masters;            // fp32 [M + E]
    private readonly Tensor gradients;          // fp32 [M + E]
    private readonly Tensor? working;           // bf16 [M], module parameters are views (bf16 mode only)
    private readonly Tensor moduleZeros;        // zeros in the module parameters' dtype: padding and missing gradients
    private readonly Tensor? extraZeros;        // fp32 zeros, the same for the extra parameters
    private readonly Tensor expAvg;             // fp32 [M + E]
    private readonly Tensor expAvgSq;           // fp32 [M + E]
    private readonly Tensor? decayMask;         // fp32 [M + E], 1 where weight decay applies (null: everywhere)
    private readonly long moduleCount;
    private readonly double beta1, beta2, eps, weightDecay;
    private readonly Parameter[] parameters;
    private readonly Parameter[] moduleParameters, extraParameters;
    private long steps;

    /// <summary>
    /// Takes the trainable parameters of <paramref name="module"/> and the trainable fp32 <paramref name="extra"/>
    /// parameters (e.g. the loss weights s_t), all on one device. With <paramref name="bf16"/> the module is cast to
    /// bfloat16 here and the optimiser keeps fp32 masters initialised from the current fp32 weights.
    /// <paramref name="decays"/> picks the parameters that weight decay applies to (null: all, one group as MTFormer); it is asked
    /// once per parameter here and becomes a flat 0/1 mask, so the update stays one kernel per step.
    /// </summary>
    public FlatAdamW(nn.Module module, IEnumerable<Parameter> extra, bool bf16,
                     double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0,
                     Func<Parameter, bool>? decays = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        (this.beta1, this.beta2, this.eps, this.weightDecay) = (beta1, beta2, eps, weightDecay);
        var moduleParameters = module.parameters().Where(p => p.requires_grad).ToArray();
        var extraParameters = extra.Where(p => p.requires_grad).ToArray();
        var all = moduleParameters.Concat(extraParameters).ToArray();
        if (all.Length == 0) throw new ArgumentException("FlatAdamW needs at least one trainable parameter.");
        var device = all[0].device;
        foreach (var p in all)
        {
            if (p.dtype != ScalarType.Float32) throw new ArgumentException($"FlatAdamW expects float32 parameters, got {p.dtype}: build the network in float32 (bf16 is applied here).");
            if (p.device_type != device.type || p.device_index != device.index) throw new ArgumentException($"FlatAdamW expects all parameters on {device}, one is on {p.device}: move the network and the loss to one device first.");
        }
        moduleCount = moduleParameters.Sum(p => Slot(p.numel()));
        long total = moduleCount + extraParameters.Sum(p => Slot(p.numel()));
        Count = all.Sum(p => p.numel());

        using var noGrad = no_grad();
        masters = zeros(total, ScalarType.Float32, device);
        gradients = zeros(total, ScalarType.Float32, device);
        expAvg = zeros(total, ScalarType.Float32, device);
        expAvgSq = zeros(total, ScalarType.Float32, device);
        using (var scope = NewDisposeScope())
        {
            long offset = 0;
            foreach (var p in all) { masters.narrow(0, offset, p.numel()).copy_(p.detach().reshape(-1)); offset += Slot(p.numel()); }
        }
        if (decays is not null && !all.All(decays))
        {
            var mask = new float[total];
            long offset = 0;
            foreach (var p in all)
            {
                if (decays(p)) Array.Fill(mask, 1f, (int)offset, (int)p.numel());
                offset += Slot(p.numel());
            }
            decayMask = tensor(mask, device: device);
        }

        if (bf16)
        {
            module.to(ScalarType.BFloat16);   // new bf16 parameter tensors, same order
            moduleParameters = module.parameters().Where(p => p.requires_grad).ToArray();
            working = masters.narrow(0, 0, moduleCount).to(ScalarType.BFloat16);
            Alias(moduleParameters, working, 0);
        }
        else
        {
            Alias(moduleParameters, masters, 0);
        }
        Alias(extraParameters, masters, moduleCount);
        (this.moduleParameters, this.extraParameters) = (moduleParameters, extraParameters);
        parameters = moduleParameters.Concat(extraParameters).ToArray();
        moduleZeros = zeros(moduleParameters.Select(p => Slot(p.numel())).DefaultIfEmpty(0).Max(), bf16 ? ScalarType.BFloat16 : ScalarType.Float32, device);
        if (extraParameters.Length > 0) extraZeros = zeros(extraParameters.Max(p => Slot(p.numel())), ScalarType.Float32, device);
    }

    /// <summary>The optimised parameters as the network and loss see them (bf16 working copies in bf16 mode).</summary>
    public IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>Number of optimised values (the parameters' elements, without the alignment padding).</summary>
    public long Count { get; }

    /// <summary>
    /// Elements a parameter occupies in the flat buffers: its size rounded up to 64, so that every parameter starts
    /// 128-byte aligned (matrix kernels pick their fast paths); the padding stays zero, with zero gradient.
    /// </summary>
    private static long Slot(long elements) => (elements + 63) / 64 * 64;

    /// <summary>
    /// The fp32 master of each trainable parameter of <paramref name="module"/> (the module this optimiser was built on),
    /// by state-dict name: views into the flat master buffer.
    /// </summary>
    public IEnumerable<(string Name, Tensor Master)> NamedMasters(nn.Module module)
    {
        long offset = 0;
        foreach (var (name, p) in module.named_parameters().Where(p => p.parameter.requires_grad))
        {
            yield return (name, masters.narrow(0, offset, p.numel()).view(p.shape));
            offset += Slot(p.numel());
        }
    }

    /// <summary>Casts <paramref name="module"/> to fp32 and copies the fp32 masters into its trainable parameters.</summary>
    public void RestoreFp32(nn.Module module)
    {
        module.to(ScalarType.Float32);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var byName = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, master) in NamedMasters(module)) byName[name].copy_(master);
    }

    /// <summary>
    /// Sets every parameter's gradient to none (no device work): backward then hands each parameter its own fresh
    /// gradient, which <see cref="Step"/> gathers. Gradients left from before are dropped, not accumulated.
    /// </summary>
    public void ZeroGrad()
    {
        foreach (var p in parameters) p.grad = null;
    }

    /// <summary>
    /// One AdamW step with learning rate <paramref name="learningRate"/> after clipping the global gradient norm to
    /// <paramref name="clipNorm"/> (0: no clipping). Clipping matches <c>clip_grad_norm_</c>: g ← g·min(1, c/(‖g‖+1e-6)),
    /// computed on the device. In bf16 mode the bf16 gradients are copied to fp32 first and the updated masters
    /// are written back to the bf16 module.
    /// </summary>
    public void Step(double learningRate, double clipNorm)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        steps++;
        var biasCorrection1 = 1 - Math.Pow(beta1, steps);
        var biasCorrection2 = 1 - Math.Pow(beta2, steps);
        // Every number handed to a tensor op becomes a native Scalar. TorchSharp 0.107 leaves implicitly converted
        // ones to the finalizer thread, which can free one while a native call still reads it (TorchSharp PR 1496):
        // in this once-per-step code they are made and freed explicitly.
        using var normEpsilon = 1e-6.ToScalar();
        using var clip = clipNorm.ToScalar();
        using var one = 1.0.ToScalar();
        using var decay = (1 - learningRate * weightDecay).ToScalar();
        using var maskedDecay = (-learningRate * weightDecay).ToScalar();
        using var firstMoment = beta1.ToScalar();
        using var firstMomentInput = (1 - beta1).ToScalar();
        using var secondMoment = beta2.ToScalar();
        using var secondMomentInput = (1 - beta2).ToScalar();
        using var rootBiasCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
        using var epsilon = eps.ToScalar();
        using var stepSize = (-learningRate / biasCorrection1).ToScalar();

        Gather(moduleParameters, moduleZeros, 0);
        Gather(extraParameters, extraZeros, moduleCount);
        if (clipNorm > 0)
        {
            var coefficient = gradients.norm().add_(normEpsilon).reciprocal_().mul_(clip).clamp_max_(one);
            gradients.mul_(coefficient);
        }
        if (decayMask is null) masters.mul_(decay);                  // θ ← θ(1 − lr·λ)
        else masters.addcmul_(masters, decayMask, value: maskedDecay); // θ ← θ − lr·λ·mask·θ
        expAvg.mul_(firstMoment).add_(gradients, alpha: firstMomentInput);
        expAvgSq.mul_(secondMoment).addcmul_(gradients, gradients, value: secondMomentInput);
        var denominator = expAvgSq.sqrt().div_(rootBiasCorrection2).add_(epsilon);
        masters.addcdiv_(expAvg, denominator, value: stepSize);
        working?.copy_(masters.narrow(0, 0, moduleCount));
    }

    /// <summary>
    /// The gradients of <paramref name="list"/> (none counts as zero), each padded to its slot, concatenated in one pass
    /// and copied (cast to fp32) into the flat gradient buffer at <paramref name="start"/>.
    /// </summary>
    private void Gather(Parameter[] list, Tensor? zeroSource, long start)
    {
        if (list.Length == 0) return;
        var pieces = new List<Tensor>(2 * list.Length);
        long length = 0;
        foreach (var p in list)
        {
            long n = p.numel(), slot = Slot(n);
            var g = p.grad;
            pieces.Add(g is null ? zeroSource!.narrow(0, 0, n) : g.reshape(-1));
            if (slot > n) pieces.Add(zeroSource!.narrow(0, 0, slot - n));
            length += slot;
        }
        gradients.narrow(0, start, length).copy_(cat(pieces, 0));
    }

    /// <summary>Points every parameter at its slice of <paramref name="values"/>.</summary>
    private static void Alias(Parameter[] list, Tensor values, long start)
    {
        using var scope = NewDisposeScope();
        long offset = start;
        foreach (var p in list)
        {
            var n = p.numel();
            p.set_(values.narrow(0, offset, n).view(p.shape));
            offset += Slot(n);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        masters.Dispose(); gradients.Dispose(); expAvg.Dispose(); expAvgSq.Dispose(); decayMask?.Dispose();
        working?.Dispose(); moduleZeros.Dispose(); extraZeros?.Dispose();
    }
}
