namespace Microsoft.ML.Kem.Training;

/// <summary>
/// Linear warm-up to lr_0 over <c>warmup</c> steps, then polynomial decay per iteration,
/// lr_i = lr_0 · (1 − (i − warmup)/(I − warmup))^p (MODEL-SPEC §11, InvPT-style per-iteration poly with our warm-up).
/// </summary>
public sealed record LearningRateSchedule(double BaseRate, int TotalSteps, int WarmupSteps, double Power)
{
    /// <summary>Learning rate for the 0-based step <paramref name="step"/>.</summary>
    public double At(int step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps) return BaseRate * (step + 1) / WarmupSteps;
        int decaySteps = Math.Max(TotalSteps - WarmupSteps, 1);
        double progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        return BaseRate * Math.Pow(1 - progress, Power);
    }
}
