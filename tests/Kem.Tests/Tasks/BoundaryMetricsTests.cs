using Microsoft.ML.Kem.Tasks;

namespace Kem.Tests.Tasks;

[TestClass]
public sealed class BoundaryMetricsTests
{
    const int Size = 5;    // 5×5 image: tolerance radius max(1, round(0.0075·7.07)) = 1

    static float[] VerticalLine(int column, float value = 1f)
    {
        var map = new float[Size * Size];
        for (int y = 0; y < Size; y++)
            map[y * Size + column] = value;
        return map;
    }

    static BoundaryMetrics Score(float[] prediction, float[] label)
    {
        var accumulator = DenseMetrics.CreateAccumulator(TaskSpec.BoundariesTask());
        accumulator.Add(prediction, label, Size, Size);
        return (BoundaryMetrics)accumulator.Compute();
    }

    [TestMethod]
    public void Tolerance_radius_is_0_0075_of_the_diagonal_at_least_one()
    {
        Assert.AreEqual(1, BoundaryMetricAccumulator.ToleranceRadius(Size, Size));
        Assert.AreEqual(6, BoundaryMetricAccumulator.ToleranceRadius(480, 640));
        Assert.AreEqual(5, BoundaryMetricAccumulator.ToleranceRadius(512, 512));
    }

    [TestMethod]
    public void Exact_match_scores_F_100()
    {
        var metrics = Score(VerticalLine(2), VerticalLine(2));
        Assert.AreEqual(100.0, metrics.OdsF, 1e-9);
        Assert.AreEqual(100.0, metrics.Precision, 1e-9);
        Assert.AreEqual(100.0, metrics.Recall, 1e-9);
    }

    [TestMethod]
    public void Offset_by_one_pixel_is_within_tolerance_and_by_two_is_not()
    {
        Assert.AreEqual(100.0, Score(VerticalLine(3), VerticalLine(2)).OdsF, 1e-9);
        Assert.AreEqual(0.0, Score(VerticalLine(4), VerticalLine(2)).OdsF, 1e-9);
    }

    [TestMethod]
    public void Matching_is_one_to_one()
    {
        var label = new float[Size * Size];
        label[2 * Size + 2] = 1;
        var prediction = new float[Size * Size];
        prediction[2 * Size + 2] = prediction[2 * Size + 3] = 1;
        var metrics = Score(prediction, label);
        // two predicted pixels, one ground-truth pixel: P = 1/2, R = 1
        Assert.AreEqual(50.0, metrics.Precision, 1e-9);
        Assert.AreEqual(200.0 / 3, metrics.OdsF, 1e-9);
    }

    [TestMethod]
    public void Thick_prediction_is_thinned_before_matching()
    {
        var prediction = new float[Size * Size];
        for (int y = 0; y < Size; y++)
            for (int x = 1; x <= 3; x++)
                prediction[y * Size + x] = 1;
        var metrics = Score(prediction, VerticalLine(2));
        // unthinned, 15 predicted pixels for 5 matches would give P = 1/3; thinned, every remaining pixel is matched
        // within the tolerance (the open ends of the line shrink, so recall stays below 100)
        Assert.AreEqual(100.0, metrics.Precision, 1e-9);
        Assert.IsGreaterThan(0.0, metrics.Recall);
    }

    [TestMethod]
    public void Best_threshold_is_chosen_over_the_split()
    {
        // true line scored 0.35, false line (two columns away) 0.15: τ ≤ 0.15 → P 1/2; 0.16..0.35 → exact; above → nothing
        var prediction = VerticalLine(2, 0.35f);
        for (int y = 0; y < Size; y++)
            prediction[y * Size] = 0.15f;
        var metrics = Score(prediction, VerticalLine(2));
        Assert.AreEqual(100.0, metrics.OdsF, 1e-9);
        Assert.AreEqual(0.16, metrics.OdsThreshold, 1e-12);
    }

    [TestMethod]
    public void Predictions_on_ignored_pixels_do_not_count()
    {
        var label = VerticalLine(2);
        for (int y = 0; y < Size; y++)
            label[y * Size + 4] = 255;
        var prediction = VerticalLine(2);
        for (int y = 0; y < Size; y++)
            prediction[y * Size + 4] = 1;
        Assert.AreEqual(100.0, Score(prediction, label).Precision, 1e-9);
    }

    [TestMethod]
    public void Matching_is_maximum_where_nearest_first_would_strand_a_pixel()
    {
        // Ground truth at (2,2) and (2,3); predicted (2,2) and (1,2), radius 1. Nearest first gives (2,2)→(2,2) and leaves
        // (1,2), whose only ground-truth neighbour is (2,2), unmatched; the maximum matching pairs both.
        const int W = 6;
        var groundTruth = new bool[W * W];
        groundTruth[2 * W + 2] = groundTruth[2 * W + 3] = true;
        Assert.AreEqual(2L, BoundaryMetricAccumulator.MaximumMatch([2 * W + 2, 1 * W + 2], groundTruth, 1, W, W));
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    public void Matching_size_equals_a_plain_augmenting_path_search_on_random_pixels(int radius)
    {
        var random = new Random(100 + radius);
        for (int trial = 0; trial < 40; trial++)
        {
            int h = 8 + random.Next(10), w = 8 + random.Next(10);
            var groundTruth = new bool[h * w];
            var predicted = new List<int>();
            for (int i = 0; i < h * w; i++)
            {
                groundTruth[i] = random.NextDouble() < 0.25;
                if (random.NextDouble() < 0.3) predicted.Add(i);
            }
            Assert.AreEqual(KuhnMatching(predicted, groundTruth, radius, h, w),
                BoundaryMetricAccumulator.MaximumMatch(predicted, groundTruth, radius, h, w), $"trial {trial}, {h}×{w}");
        }
    }

    /// <summary>Kuhn's algorithm, recursive, one augmenting-path search per predicted pixel: the textbook reference.</summary>
    static long KuhnMatching(List<int> predicted, bool[] groundTruth, int radius, int h, int w)
    {
        var owner = new Dictionary<int, int>();                  // ground-truth pixel → predicted index
        long count = 0;
        for (int u = 0; u < predicted.Count; u++)
            if (TryAugment(u, new HashSet<int>())) count++;
        return count;

        bool TryAugment(int u, HashSet<int> seen)
        {
            int py = predicted[u] / w, px = predicted[u] % w;
            for (int dy = -radius; dy <= radius; dy++)
                for (int dx = -radius; dx <= radius; dx++)
                {
                    int y = py + dy, x = px + dx;
                    if (dy * dy + dx * dx > radius * radius || y < 0 || y >= h || x < 0 || x >= w || !groundTruth[y * w + x]) continue;
                    int q = y * w + x;
                    if (!seen.Add(q)) continue;
                    if (!owner.TryGetValue(q, out int other) || TryAugment(other, seen))
                    {
                        owner[q] = u;
                        return true;
                    }
                }
            return false;
        }
    }
}
