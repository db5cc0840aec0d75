using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Training;

/// <summary>
/// AdamW (decoupled weight decay; the same element-wise update as <c>torch.optim.AdamW</c>) over all trainable
/// parameters at once, with optional bf16 working weights and fp32 master weights (MODEL-SPEC §11).
/// Every parameter and its gradient is a view into one flat buffer, so zeroing the gradients, copying bf16 gradients
/// to the fp32 masters, clipping, the AdamW update and copying the masters back are a handful of kernels whatever
/// the number of parameters; gradient clipping keeps the norm on the device (no host synchronisation).
/// </summary>
/// <remarks>
/// Layout: masters = [module parameters (M values) | extra fp32 parameters (E values)], each parameter 64-element aligned. In fp32 mode the module's
/// parameters are views into the masters; in bf16 mode the module is cast to bf16 and its parameters are views into a
/// flat bf16 working buffer of M values. Gradients are views into flat buffers of the same layout: autograd adds
/// into an existing gradient in place, so backward fills them directly. Never set these parameters' gradients to
/// null (e.g. <c>zero_grad()</c> on the module) while this optimiser is in use; call <see cref="ZeroGrad"/>.
/// </remarks>
public sealed class FlatAdamW : IDisposable
{
    private readonly Tensor masters;            // fp32 [M + E]
    private readonly Tensor gradients;          // fp32 [M + E]
    private readonly Tensor? working;           // bf16 [M], module parameters are views (bf16 mode only)
    private readonly Tensor? workingGradients;  // bf16 [M] (bf16 mode only)
    private readonly Tensor expAvg;             // fp32 [M + E]
    private readonly Tensor expAvgSq;           // fp32 [M + E]
    private readonly Tensor? decayMask;         // fp32 [M + E], 1 where weight decay applies (null: everywhere)
    private readonly long moduleCount;
    private readonly double beta1, beta2, eps, weightDecay;
    private readonly Parameter[] parameters;
    private readonly List<long> gradientOffsets = new();
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
            workingGradients = zeros(moduleCount, ScalarType.BFloat16, device);
            Alias(moduleParameters, working, workingGradients, 0);
        }
        else
        {
            Alias(moduleParameters, masters, gradients, 0);
        }
        Alias(extraParameters, masters, gradients, moduleCount);
        parameters = moduleParameters.Concat(extraParameters).ToArray();
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

    /// <summary>AdamW steps taken so far (the bias corrections depend on it).</summary>
    public long Steps => steps;

    /// <summary>The state a checkpoint keeps (<see cref="TrainingCheckpoint"/>): the flat fp32 masters and the two moments, in their padded layout.</summary>
    internal IEnumerable<(string Name, Tensor Values)> StateTensors() => [("masters", masters), ("exp_avg", expAvg), ("exp_avg_sq", expAvgSq)];

    /// <summary>
    /// Puts back a state saved by <see cref="StateTensors"/> from an optimiser over the same parameters: the masters (so the
    /// fp32 parameters, or the bf16 working copies, take their values), the moments and the step count.
    /// </summary>
    internal void LoadState(IReadOnlyDictionary<string, Tensor> state, long stepsTaken)
    {
        using var noGrad = no_grad();
        foreach (var (name, target) in StateTensors())
        {
            var source = state.TryGetValue(name, out var found) ? found
                : throw new InvalidDataException($"The optimiser state has no '{name}'.");
            if (source.numel() != target.numel())
                throw new InvalidDataException($"The optimiser state's '{name}' holds {source.numel()} values; this optimiser has {target.numel()} (another network).");
            target.copy_(source.reshape(target.shape));
        }
        working?.copy_(masters.narrow(0, 0, moduleCount));
        steps = stepsTaken;
    }

    /// <summary>Zeroes every gradient (one or two kernels).</summary>
    public void ZeroGrad()
    {
        using var noGrad = no_grad();
        workingGradients?.zero_();
        gradients.zero_();
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

        if (workingGradients is not null) gradients.narrow(0, 0, moduleCount).copy_(workingGradients);
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
    /// True while every parameter's gradient still looks like its view into a flat gradient buffer: present, at its
    /// offset (false after someone set a gradient to null and autograd made a fresh one). No device work.
    /// </summary>
    public bool GradientsAreAliased()
    {
        for (int i = 0; i < parameters.Length; i++)
        {
            using var g = parameters[i].grad;
            if (g is null || g.storage_offset() != gradientOffsets[i]) return false;
        }
        return true;
    }

    /// <summary>Points every parameter at its slice of <paramref name="values"/> and its gradient at the same slice of <paramref name="grads"/>.</summary>
    private void Alias(Parameter[] list, Tensor values, Tensor grads, long start)
    {
        using var scope = NewDisposeScope();
        long offset = start;
        foreach (var p in list)
        {
            var n = p.numel();
            var shape = p.shape;
            p.set_(values.narrow(0, offset, n).view(shape));
            var gradient = grads.narrow(0, offset, n).view(shape);
            p.grad = gradient;
            gradientOffsets.Add(offset);
            offset += Slot(n);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        masters.Dispose(); gradients.Dispose(); expAvg.Dispose(); expAvgSq.Dispose(); decayMask?.Dispose();
        working?.Dispose(); workingGradients?.Dispose();
    }
}
