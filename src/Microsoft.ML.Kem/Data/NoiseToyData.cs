namespace Microsoft.ML.Kem.Data;

/// <summary>Settings of <see cref="NoiseToyData"/> (MODEL-SPEC §14). Defaults are the spec's sizes.</summary>
public sealed record NoiseToyOptions
{
    /// <summary>Tokens per task n. Default 16.</summary>
    public int Tokens { get; init; } = 16;

    /// <summary>Token width d. Default 32.</summary>
    public int Width { get; init; } = 32;

    /// <summary>Width of the shared latent z, d_z (even: task 1 sees the first half, task 2 the second). Default 8.</summary>
    public int LatentWidth { get; init; } = 8;

    /// <summary>Width of each real task's target Y_t. Default 4.</summary>
    public int TargetWidth { get; init; } = 4;

    /// <summary>Standard deviation of the observation noise added to the real tasks' features. Default 0.1.</summary>
    public float ObservationNoise { get; init; } = 0.1f;

    /// <summary>Seed of the fixed maps A_t, B_t and of every sample; sample i is a pure function of (options, i).</summary>
    public long Seed { get; init; }

    /// <summary>Throws with a message that says what to change when a setting is out of range.</summary>
    public void Validate()
    {
        if (Tokens < 1 || Width < 1 || TargetWidth < 1)
            throw new ArgumentOutOfRangeException(nameof(Tokens), $"Tokens {Tokens}, Width {Width} and TargetWidth {TargetWidth} must all be ≥ 1.");
        if (LatentWidth < 2 || LatentWidth % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(LatentWidth), LatentWidth, "LatentWidth must be even and ≥ 2 (each real task sees half of z).");
        if (!(ObservationNoise >= 0f) || float.IsInfinity(ObservationNoise))
            throw new ArgumentOutOfRangeException(nameof(ObservationNoise), ObservationNoise, "ObservationNoise must be a finite value ≥ 0.");
    }
}

/// <summary>
/// A batch of the noise toy: <see cref="Features"/> count×3×n×d (tasks 1, 2 and the pure-noise task 3, in that order) and
/// <see cref="Targets"/> count×2×n×targetWidth (tasks 1 and 2; task 3 has none). Row-major float32.
/// </summary>
public sealed record NoiseToyBatch(int Count, int Tokens, int Width, int TargetWidth, float[] Features, float[] Targets);

/// <summary>
/// Data of the paper's Fig. 1 toy, as proposed in MODEL-SPEC §14. Per sample, with a shared latent z ~ N(0, I) of n×d_z:
/// <code>
/// X_1 = z[:, :d_z/2] A_1 + σ_o·ε_1      task 1 sees only the first half of z
/// X_2 = z[:, d_z/2:] A_2 + σ_o·ε_2      task 2 sees only the second half
/// X_3 = ε_3                             pure standard-normal noise, no target
/// Y_1 = z B_1,   Y_2 = z B_2            each target needs both halves of z
/// </code>
/// A_t (d_z/2 × d) and B_t (d_z × targetWidth) are fixed Gaussian draws from the seed with columns scaled to unit norm.
/// Because every target needs the other task's half of z at the same token position, tasks 1 and 2 must read each
/// other; task 3 never helps. Everything is drawn with SplitMix64 + Box–Muller, so samples are byte-identical across
/// runtimes and independent of how they are batched.
/// </summary>
public sealed class NoiseToyData
{
    private const int RealTasks = 2;
    private readonly float[][] encoders;   // A_t: (d_z/2)×d, row-major
    private readonly float[][] readouts;   // B_t: d_z×targetWidth, row-major

    /// <summary>Creates the generator and draws the fixed maps A_1, A_2, B_1, B_2.</summary>
    public NoiseToyData(NoiseToyOptions? options = null)
    {
        Options = options ?? new NoiseToyOptions();
        Options.Validate();
        var o = Options;
        var random = SceneRandom.ForImage(o.Seed, -1);   // index −1: the maps' stream, never a sample's
        int half = o.LatentWidth / 2;
        encoders = [UnitColumns(Gaussian(ref random, half * o.Width), half, o.Width), UnitColumns(Gaussian(ref random, half * o.Width), half, o.Width)];
        readouts = [UnitColumns(Gaussian(ref random, o.LatentWidth * o.TargetWidth), o.LatentWidth, o.TargetWidth),
                    UnitColumns(Gaussian(ref random, o.LatentWidth * o.TargetWidth), o.LatentWidth, o.TargetWidth)];
    }

    /// <summary>The settings every sample is drawn with.</summary>
    public NoiseToyOptions Options { get; }

    /// <summary>Number of tasks in <see cref="NoiseToyBatch.Features"/>: the two real ones and the noise task.</summary>
    public const int Tasks = 3;

    /// <summary>Index of the pure-noise task.</summary>
    public const int NoiseTask = 2;

    /// <summary>The fixed encoder A_t of real task <paramref name="task"/> (0 or 1), (d_z/2)×d row-major.</summary>
    public ReadOnlySpan<float> Encoder(int task) => encoders[task];

    /// <summary>The fixed readout B_t of real task <paramref name="task"/> (0 or 1), d_z×targetWidth row-major.</summary>
    public ReadOnlySpan<float> Readout(int task) => readouts[task];

    /// <summary>Samples firstIndex … firstIndex + count − 1; the same options and indices always give identical values.</summary>
    public NoiseToyBatch Batch(int firstIndex, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstIndex);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var o = Options;
        int n = o.Tokens, d = o.Width, half = o.LatentWidth / 2, c = o.TargetWidth;
        var features = new float[(long)count * Tasks * n * d];
        var targets = new float[(long)count * RealTasks * n * c];
        var z = new float[n * o.LatentWidth];
        for (int s = 0; s < count; s++)
        {
            var random = SceneRandom.ForImage(o.Seed, firstIndex + s);
            for (int i = 0; i < z.Length; i++) z[i] = (float)NextGaussian(ref random);
            for (int t = 0; t < Tasks; t++)
                for (int i = 0; i < n; i++)
                {
                    int at = ((s * Tasks + t) * n + i) * d;
                    for (int j = 0; j < d; j++)
                    {
                        float noise = (float)NextGaussian(ref random);
                        if (t == NoiseTask) { features[at + j] = noise; continue; }
                        float signal = 0f;
                        for (int l = 0; l < half; l++) signal += z[i * o.LatentWidth + t * half + l] * encoders[t][l * d + j];
                        features[at + j] = signal + o.ObservationNoise * noise;
                    }
                }
            for (int t = 0; t < RealTasks; t++)
                for (int i = 0; i < n; i++)
                    for (int k = 0; k < c; k++)
                    {
                        float y = 0f;
                        for (int l = 0; l < o.LatentWidth; l++) y += z[i * o.LatentWidth + l] * readouts[t][l * c + k];
                        targets[((s * RealTasks + t) * n + i) * c + k] = y;
                    }
        }
        return new NoiseToyBatch(count, n, d, c, features, targets);
    }

    /// <summary>Standard normal draw (Box–Muller on two 53-bit uniforms; the second value is discarded for simplicity).</summary>
    internal static double NextGaussian(ref SceneRandom random)
    {
        double u1 = ((random.NextUInt64() >> 11) + 1) * (1.0 / 9007199254740993.0);   // (0, 1]
        double u2 = (random.NextUInt64() >> 11) * (1.0 / 9007199254740992.0);         // [0, 1)
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    private static float[] Gaussian(ref SceneRandom random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)NextGaussian(ref random);
        return values;
    }

    private static float[] UnitColumns(float[] matrix, int rows, int cols)
    {
        for (int j = 0; j < cols; j++)
        {
            double norm = 0;
            for (int i = 0; i < rows; i++) norm += (double)matrix[i * cols + j] * matrix[i * cols + j];
            float scale = (float)(1.0 / Math.Sqrt(Math.Max(norm, 1e-30)));
            for (int i = 0; i < rows; i++) matrix[i * cols + j] *= scale;
        }
        return matrix;
    }
}
