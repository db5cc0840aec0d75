namespace Microsoft.ML.Kem.Training;

/// <summary>When the polynomial decay of the learning rate moves (MODEL-SPEC §11).</summary>
public enum LearningRateDecay
{
    /// <summary>MTFormer: lr_e = lr_0 · (1 − e/E)^p, set at the start of each 0-based epoch e (constant within an epoch, never 0).</summary>
    PerEpoch,
    /// <summary>InvPT: lr_i = lr_0 · (1 − (i − warmup)/(I − warmup))^p, every step, reaching 0 at the last step.</summary>
    PerIteration,
}

/// <summary>
/// Linear warm-up over <c>WarmupSteps</c> steps, then polynomial decay with power <c>Power</c> (MODEL-SPEC §11), per iteration
/// (<see cref="LearningRateDecay.PerIteration"/>, InvPT) or per epoch (<see cref="LearningRateDecay.PerEpoch"/>, MTFormer).
/// Warm-up is per iteration in both: step i &lt; warmup runs at (i + 1)/warmup of the rate the decay gives it
/// (per iteration lr_0, per epoch lr_e of the step's epoch).
/// </summary>
/// <param name="BaseRate">Peak learning rate lr_0.</param>
/// <param name="TotalSteps">All steps I = E · steps per epoch.</param>
/// <param name="WarmupSteps">Linear warm-up steps.</param>
/// <param name="Power">Exponent p of the decay (0.9 in the spec).</param>
/// <param name="Decay">Per iteration (default of this record, the former behaviour) or per epoch.</param>
/// <param name="StepsPerEpoch">Steps in one epoch; needed for <see cref="LearningRateDecay.PerEpoch"/> (E = TotalSteps / StepsPerEpoch).</param>
public sealed record LearningRateSchedule(double BaseRate, int TotalSteps, int WarmupSteps, double Power,
                                          LearningRateDecay Decay = LearningRateDecay.PerIteration, int StepsPerEpoch = 1)
{
    /// <summary>Learning rate for the 0-based step <paramref name="step"/>.</summary>
    public double At(int step)
    {
        double warmup = WarmupSteps > 0 && step < WarmupSteps ? (double)(step + 1) / WarmupSteps : 1;
        if (Decay == LearningRateDecay.PerEpoch)
        {
            int perEpoch = Math.Max(StepsPerEpoch, 1);
            int epochs = Math.Max(TotalSteps / perEpoch, 1);
            int epoch = Math.Clamp(step / perEpoch, 0, epochs);
            return BaseRate * warmup * Math.Pow(1 - (double)epoch / epochs, Power);   // MODEL-SPEC §11: lr_e = lr_0 (1 − e/E)^0.9
        }
        if (warmup < 1) return BaseRate * warmup;
        int decaySteps = Math.Max(TotalSteps - WarmupSteps, 1);
        double progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        return BaseRate * Math.Pow(1 - progress, Power);                               // MODEL-SPEC §11: lr_i = lr_0 (1 − i/I)^0.9
    }
}
