using Microsoft.ML.Kem.Data;

namespace Kem.Tests.Toys;

[TestClass]
public sealed class NoiseToyDataTests
{
    private static readonly NoiseToyOptions Options = new() { Seed = 7 };

    [TestMethod]
    public void Same_seed_gives_identical_samples_whatever_the_batching()
    {
        var whole = new NoiseToyData(Options).Batch(10, 4);
        var again = new NoiseToyData(Options).Batch(10, 4);
        CollectionAssert.AreEqual(whole.Features, again.Features);
        CollectionAssert.AreEqual(whole.Targets, again.Targets);

        var third = new NoiseToyData(Options).Batch(12, 1);                 // sample 12 alone = third sample of the batch
        int featuresPerSample = 3 * Options.Tokens * Options.Width, targetsPerSample = 2 * Options.Tokens * Options.TargetWidth;
        CollectionAssert.AreEqual(whole.Features.AsSpan(2 * featuresPerSample, featuresPerSample).ToArray(), third.Features);
        CollectionAssert.AreEqual(whole.Targets.AsSpan(2 * targetsPerSample, targetsPerSample).ToArray(), third.Targets);
    }

    [TestMethod]
    public void Different_seed_or_index_gives_different_samples()
    {
        var first = new NoiseToyData(Options).Batch(0, 1);
        CollectionAssert.AreNotEqual(first.Features, new NoiseToyData(Options).Batch(1, 1).Features);
        CollectionAssert.AreNotEqual(first.Features, new NoiseToyData(Options with { Seed = 8 }).Batch(0, 1).Features);
    }

    [TestMethod]
    public void Real_tasks_follow_the_latent_model_and_the_noise_task_is_standard_normal()
    {
        var o = Options with { ObservationNoise = 0f };
        var data = new NoiseToyData(o);
        const int count = 400;
        var batch = data.Batch(0, count);
        int n = o.Tokens, d = o.Width, c = o.TargetWidth, half = o.LatentWidth / 2;

        // Without observation noise X_t = z_t A_t exactly, so z_t = X_t Aᵀ(A Aᵀ)⁻¹; then Y_t must equal z B_t.
        double[,] Pinv(ReadOnlySpan<float> a)
        {
            // A: half×d → (A Aᵀ)⁻¹ A, half×d (Gauss–Jordan on the half×half Gram matrix)
            var gram = new double[half, 2 * half];
            for (int i = 0; i < half; i++)
            {
                for (int j = 0; j < half; j++)
                    for (int k = 0; k < d; k++) gram[i, j] += (double)a[i * d + k] * a[j * d + k];
                gram[i, half + i] = 1;
            }
            for (int col = 0; col < half; col++)
            {
                double pivot = gram[col, col];
                for (int j = 0; j < 2 * half; j++) gram[col, j] /= pivot;
                for (int r = 0; r < half; r++)
                {
                    if (r == col) continue;
                    double f = gram[r, col];
                    for (int j = 0; j < 2 * half; j++) gram[r, j] -= f * gram[col, j];
                }
            }
            var result = new double[half, d];
            for (int i = 0; i < half; i++)
                for (int k = 0; k < d; k++)
                    for (int j = 0; j < half; j++) result[i, k] += gram[i, half + j] * a[j * d + k];
            return result;
        }
        var pinv = new[] { Pinv(data.Encoder(0)), Pinv(data.Encoder(1)) };

        double maxError = 0, noiseSum = 0, noiseSquares = 0;
        long noiseCount = 0;
        for (int s = 0; s < count; s++)
            for (int i = 0; i < n; i++)
            {
                var z = new double[o.LatentWidth];
                for (int t = 0; t < 2; t++)
                    for (int l = 0; l < half; l++)
                        for (int k = 0; k < d; k++) z[t * half + l] += pinv[t][l, k] * batch.Features[((s * 3 + t) * n + i) * d + k];
                for (int t = 0; t < 2; t++)
                    for (int k = 0; k < c; k++)
                    {
                        double y = 0;
                        for (int l = 0; l < o.LatentWidth; l++) y += z[l] * data.Readout(t)[l * c + k];
                        maxError = Math.Max(maxError, Math.Abs(y - batch.Targets[((s * 2 + t) * n + i) * c + k]));
                    }
                for (int k = 0; k < d; k++)
                {
                    double v = batch.Features[((s * 3 + NoiseToyData.NoiseTask) * n + i) * d + k];
                    noiseSum += v; noiseSquares += v * v; noiseCount++;
                }
            }
        Assert.IsLessThan(1e-3, maxError, "Y_t = z B_t with z recovered from X_1 and X_2");
        double mean = noiseSum / noiseCount, variance = noiseSquares / noiseCount - mean * mean;
        Assert.AreEqual(0.0, mean, 0.01, "noise task mean");
        Assert.AreEqual(1.0, variance, 0.02, "noise task variance");
    }

    [TestMethod]
    public void Each_target_needs_both_halves_of_the_latent()
    {
        var data = new NoiseToyData(Options);
        int half = Options.LatentWidth / 2, c = Options.TargetWidth;
        for (int t = 0; t < 2; t++)
        {
            var readout = data.Readout(t);
            double first = 0, second = 0;
            for (int l = 0; l < Options.LatentWidth; l++)
                for (int k = 0; k < c; k++) (l < half ? ref first : ref second) += Math.Abs(readout[l * c + k]);
            Assert.IsTrue(first > 0.5 && second > 0.5, $"B_{t + 1} reads both halves of z ({first:F2}, {second:F2})");
            for (int k = 0; k < c; k++)
            {
                double norm = 0;
                for (int l = 0; l < Options.LatentWidth; l++) norm += readout[l * c + k] * readout[l * c + k];
                Assert.AreEqual(1.0, norm, 1e-5, "unit-norm columns");
            }
        }
    }
}
