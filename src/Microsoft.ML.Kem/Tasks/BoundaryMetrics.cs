namespace Microsoft.ML.Kem.Tasks;

/// <summary>
/// Boundary scores over a split (MODEL-SPEC §9), in percent: an approximation of the SEISM odsF, not bit-exact.
/// For each threshold τ ∈ {0.01, …, 0.99}: predicted boundary = Zhang-Suen thinning of {p ≥ τ}; ground truth =
/// {label &gt; 0.5} (not thinned); pixels labelled 255 are dropped from both. Predicted and ground-truth pixels are
/// matched one-to-one within radius r = max(1, round(0.0075·√(H²+W²))) by a maximum bipartite matching (Hopcroft–Karp):
/// as many pairs as possible, the count that SEISM's min-cost assignment (a large cost per unmatched pixel) also
/// maximises; it differs from SEISM in which pairs it picks among matchings of that size, not in the count.
/// P_τ = Σ matched / Σ predicted, R_τ = Σ matched / Σ ground-truth, sums over the split.
/// </summary>
/// <param name="TaskName">The task's name.</param>
/// <param name="OdsF">max_τ 2·P_τ·R_τ / (P_τ + R_τ) (0 when P_τ + R_τ = 0); the Δm metric.</param>
/// <param name="OdsThreshold">The smallest τ reaching <paramref name="OdsF"/>.</param>
/// <param name="Precision">P_τ at <paramref name="OdsThreshold"/>.</param>
/// <param name="Recall">R_τ at <paramref name="OdsThreshold"/>.</param>
public sealed record BoundaryMetrics(string TaskName, double OdsF, double OdsThreshold, double Precision, double Recall)
    : TaskMetrics(TaskName, TaskKind.Boundaries)
{
    /// <inheritdoc/>
    public override double Primary => OdsF;
    /// <inheritdoc/>
    public override bool LowerIsBetter => false;
    /// <inheritdoc/>
    public override IReadOnlyList<SecondaryMetric> Secondary =>
        [new(nameof(Precision), "P at ODS %", Precision, false), new(nameof(Recall), "R at ODS %", Recall, false), new(nameof(OdsThreshold), "ODS τ", OdsThreshold, null)];
}

/// <summary>Dataset-level matched/predicted/ground-truth boundary pixel counts at 99 thresholds (MODEL-SPEC §9, odsF).</summary>
public sealed class BoundaryMetricAccumulator : IDenseMetricAccumulator
{
    /// <summary>Matching tolerance as a fraction of the image diagonal (SEISM's maxDist).</summary>
    public const double ToleranceFraction = 0.0075;

    /// <summary>The thresholds τ = 0.01, 0.02, …, 0.99.</summary>
    public static IReadOnlyList<double> Thresholds { get; } = [.. Enumerable.Range(1, 99).Select(k => k / 100.0)];

    readonly long[] _matched = new long[99], _predicted = new long[99];
    long _groundTruth;
    int _images;

    /// <summary>Creates the accumulator for a boundaries task.</summary>
    public BoundaryMetricAccumulator(TaskSpec task) =>
        Task = MetricInput.ForKinds(task, nameof(BoundaryMetricAccumulator), TaskKind.Boundaries);

    /// <inheritdoc/>
    public TaskSpec Task { get; }

    /// <summary>The matching radius in pixels for an image: max(1, round(0.0075 · diagonal)).</summary>
    public static int ToleranceRadius(int height, int width) =>
        Math.Max(1, (int)Math.Round(ToleranceFraction * Math.Sqrt((double)height * height + (double)width * width), MidpointRounding.AwayFromZero));

    /// <inheritdoc/>
    public void Add(ReadOnlySpan<float> prediction, ReadOnlySpan<float> label, int height, int width)
    {
        MetricInput.Check(Task, prediction, label, height, width, predictionPlanes: 1);
        MetricInput.CheckBinary(Task, prediction, label);
        int n = height * width;
        var groundTruth = new bool[n];
        var ignored = new bool[n];
        long gtCount = 0;
        for (int i = 0; i < n; i++)
        {
            ignored[i] = label[i] == TaskSpec.IgnoreLabel;
            groundTruth[i] = !ignored[i] && label[i] > 0.5f;
            if (groundTruth[i]) gtCount++;
        }
        var offsets = MatchingOffsets(ToleranceRadius(height, width));
        var nearGroundTruth = Dilate(groundTruth, offsets, height, width);  // only these predicted pixels can match
        // The mask at τ_k differs from the one at τ_{k−1} only if some p lies in [τ_{k−1}, τ_k); others reuse its counts.
        var probabilities = prediction.ToArray();
        var newMask = new bool[Thresholds.Count];
        newMask[0] = true;
        foreach (var p in probabilities)
        {
            int above = CountThresholdsAtOrBelow(p);
            if (above > 0 && above < newMask.Length)
                newMask[above] = true;
        }
        var matched = new long[Thresholds.Count];
        var predicted = new long[Thresholds.Count];
        Parallel.For(0, Thresholds.Count, k =>
        {
            if (!newMask[k])
                return;
            double tau = Thresholds[k];
            var mask = new byte[n];
            for (int i = 0; i < n; i++)
                mask[i] = probabilities[i] >= tau ? (byte)1 : (byte)0;
            ZhangSuenThinning.Thin(mask, height, width);
            var predictedPixels = new List<int>();
            for (int i = 0; i < n; i++)
                if (mask[i] == 1 && !ignored[i])
                    predictedPixels.Add(i);
            predicted[k] = predictedPixels.Count;
            predictedPixels.RemoveAll(i => !nearGroundTruth[i]);
            if (predictedPixels.Count > 0)
                matched[k] = MaximumMatch(predictedPixels, groundTruth, offsets, height, width);
        });
        for (int k = 1; k < Thresholds.Count; k++)
            if (!newMask[k])
                (matched[k], predicted[k]) = (matched[k - 1], predicted[k - 1]);
        for (int k = 0; k < matched.Length; k++)
        {
            _matched[k] += matched[k];
            _predicted[k] += predicted[k];
        }
        _groundTruth += gtCount;
        _images++;
    }

    /// <inheritdoc/>
    public TaskMetrics Compute()
    {
        if (_images == 0)
            throw MetricInput.NothingAdded(Task, "images");
        double bestF = -1, bestTau = 0, bestP = 0, bestR = 0;
        for (int k = 0; k < Thresholds.Count; k++)
        {
            double p = _predicted[k] == 0 ? 0 : (double)_matched[k] / _predicted[k];
            double r = _groundTruth == 0 ? 0 : (double)_matched[k] / _groundTruth;
            double f = MetricInput.F1(p, r);
            if (f > bestF)
                (bestF, bestTau, bestP, bestR) = (f, Thresholds[k], p, r);
        }
        return new BoundaryMetrics(Task.Name, 100 * bestF, bestTau, 100 * bestP, 100 * bestR);
    }

    /// <summary>
    /// The size of a maximum one-to-one matching between <paramref name="predictedPixels"/> and the ground-truth pixels
    /// within <paramref name="radius"/> (pixel indices row-major in a <paramref name="height"/>×<paramref name="width"/> image).
    /// </summary>
    internal static long MaximumMatch(IReadOnlyList<int> predictedPixels, bool[] groundTruth, int radius, int height, int width) =>
        MaximumMatch(predictedPixels, groundTruth, MatchingOffsets(radius), height, width);

    /// <summary>
    /// Hopcroft–Karp on the graph of predicted pixels × ground-truth pixels within the offsets, warm-started by giving
    /// every predicted pixel its nearest free ground-truth pixel; iterative, so long alternating paths cannot overflow
    /// a thread's stack. Returns the number of matched pairs.
    /// </summary>
    static long MaximumMatch(IReadOnlyList<int> predictedPixels, bool[] groundTruth, (int Dy, int Dx)[] offsets, int height, int width)
    {
        int left = predictedPixels.Count;
        var rightOf = new Dictionary<int, int>();                 // ground-truth pixel → its index among the right vertices
        var edgeStart = new int[left + 1];
        var edges = new List<int>();
        for (int u = 0; u < left; u++)
        {
            edgeStart[u] = edges.Count;
            int py = predictedPixels[u] / width, px = predictedPixels[u] % width;
            foreach (var (dy, dx) in offsets)                     // nearest first
            {
                int y = py + dy, x = px + dx;
                if (y < 0 || y >= height || x < 0 || x >= width || !groundTruth[y * width + x])
                    continue;
                int q = y * width + x;
                if (!rightOf.TryGetValue(q, out int v))
                    rightOf[q] = v = rightOf.Count;
                edges.Add(v);
            }
        }
        edgeStart[left] = edges.Count;
        var matchOfLeft = new int[left];
        var matchOfRight = new int[rightOf.Count];
        Array.Fill(matchOfLeft, -1);
        Array.Fill(matchOfRight, -1);
        long matches = 0;
        for (int u = 0; u < left; u++)                            // warm start: nearest free neighbour
            for (int e = edgeStart[u]; e < edgeStart[u + 1]; e++)
                if (matchOfRight[edges[e]] < 0)
                {
                    (matchOfLeft[u], matchOfRight[edges[e]]) = (edges[e], u);
                    matches++;
                    break;
                }

        const int Unreached = int.MaxValue;
        var layer = new int[left];
        var next = new int[left];                                 // each left vertex's next edge to try in this phase
        var queue = new Queue<int>();
        var path = new Stack<int>();
        while (true)
        {
            // BFS from the free predicted pixels along alternating paths; stop the phase when no free ground truth is reachable
            queue.Clear();
            for (int u = 0; u < left; u++)
            {
                layer[u] = matchOfLeft[u] < 0 ? 0 : Unreached;
                if (layer[u] == 0) queue.Enqueue(u);
            }
            bool reachesFree = false;
            while (queue.Count > 0)
            {
                int u = queue.Dequeue();
                for (int e = edgeStart[u]; e < edgeStart[u + 1]; e++)
                {
                    int w = matchOfRight[edges[e]];
                    if (w < 0) reachesFree = true;
                    else if (layer[w] == Unreached)
                    {
                        layer[w] = layer[u] + 1;
                        queue.Enqueue(w);
                    }
                }
            }
            if (!reachesFree)
                return matches;

            // DFS along the layers from every free predicted pixel; each success flips one augmenting path
            Array.Copy(edgeStart, next, left);
            for (int root = 0; root < left; root++)
            {
                if (matchOfLeft[root] >= 0 || layer[root] != 0)
                    continue;
                path.Clear();
                path.Push(root);
                while (path.Count > 0)
                {
                    int u = path.Peek();
                    if (next[u] == edgeStart[u + 1])            // dead end: never again in this phase
                    {
                        layer[u] = Unreached;
                        path.Pop();
                        if (path.Count > 0) next[path.Peek()]++;
                        continue;
                    }
                    int w = matchOfRight[edges[next[u]]];
                    if (w < 0)                                  // free ground truth: flip the path root → … → u → it
                    {
                        while (path.Count > 0)
                        {
                            int x = path.Pop();
                            int v = edges[next[x]];
                            (matchOfLeft[x], matchOfRight[v]) = (v, x);
                        }
                        matches++;
                        break;
                    }
                    if (layer[w] != Unreached && layer[w] == layer[u] + 1) path.Push(w);
                    else next[u]++;
                }
            }
        }
    }

    /// <summary>The number of thresholds τ with p ≥ τ (binary search; the same comparison as the masks).</summary>
    static int CountThresholdsAtOrBelow(float p)
    {
        int lo = 0, hi = Thresholds.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (p >= Thresholds[mid]) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>Pixels within the matching radius of a ground-truth pixel.</summary>
    static bool[] Dilate(bool[] groundTruth, (int Dy, int Dx)[] offsets, int height, int width)
    {
        var near = new bool[groundTruth.Length];
        for (int i = 0; i < groundTruth.Length; i++)
        {
            if (!groundTruth[i])
                continue;
            int y = i / width, x = i % width;
            foreach (var (dy, dx) in offsets)
                if (y + dy >= 0 && y + dy < height && x + dx >= 0 && x + dx < width)
                    near[(y + dy) * width + x + dx] = true;
        }
        return near;
    }

    /// <summary>All integer offsets within <paramref name="radius"/>, nearest first (ties: row, then column).</summary>
    static (int Dy, int Dx)[] MatchingOffsets(int radius)
    {
        var offsets = new List<(int Dy, int Dx)>();
        for (int dy = -radius; dy <= radius; dy++)
            for (int dx = -radius; dx <= radius; dx++)
                if (dy * dy + dx * dx <= radius * radius)
                    offsets.Add((dy, dx));
        return [.. offsets.OrderBy(o => o.Dy * o.Dy + o.Dx * o.Dx).ThenBy(o => o.Dy).ThenBy(o => o.Dx)];
    }
}

/// <summary>
/// Zhang &amp; Suen (1984) parallel thinning of a binary image to one-pixel-wide lines. Known limits: open line ends
/// shrink, and an isolated 2×2 block vanishes. A pixel is re-examined only after a neighbour was removed, so the
/// cost follows the number of removals rather than H×W per pass.
/// </summary>
static class ZhangSuenThinning
{
    /// <summary>Thins <paramref name="image"/> (row-major, 1 = foreground) in place; outside the image counts as background.</summary>
    public static void Thin(byte[] image, int height, int width)
    {
        int stride = width + 2;                                              // one background pixel of padding all round
        var padded = new byte[(height + 2) * stride];
        for (int y = 0; y < height; y++)
            Array.Copy(image, y * width, padded, (y + 1) * stride + 1, width);
        // P2..P9 = N, NE, E, SE, S, SW, W, NW
        int[] around = [-stride, -stride + 1, 1, stride + 1, stride, stride - 1, -1, -stride - 1];

        var listed = new bool[padded.Length];
        var unchangedChecks = new byte[padded.Length];                       // checks since the neighbourhood last changed
        var candidates = new List<int>();
        for (int i = 0; i < padded.Length; i++)
            if (padded[i] == 1 && CountNeighbours(padded, i, around) < 8)
            {
                listed[i] = true;
                candidates.Add(i);
            }

        var removed = new List<int>();
        for (int step = 0, idle = 0; idle < 2; step ^= 1)                   // stop after a full iteration removes nothing
        {
            removed.Clear();
            foreach (int i in candidates)
                if (IsDeletable(padded, i, around, step))
                    removed.Add(i);
            idle = removed.Count == 0 ? idle + 1 : 0;
            foreach (int i in removed)
                padded[i] = 0;

            int kept = 0;                                                    // drop removed pixels and those both steps kept
            for (int c = 0; c < candidates.Count; c++)
            {
                int i = candidates[c];
                if (padded[i] == 1 && ++unchangedChecks[i] < 2)
                    candidates[kept++] = i;
                else
                    (listed[i], unchangedChecks[i]) = (false, 0);
            }
            candidates.RemoveRange(kept, candidates.Count - kept);
            foreach (int i in removed)                                       // neighbours of removed pixels: examine again
                foreach (int d in around)
                {
                    int q = i + d;
                    if (padded[q] == 0)
                        continue;
                    unchangedChecks[q] = 0;
                    if (!listed[q])
                    {
                        listed[q] = true;
                        candidates.Add(q);
                    }
                }
        }

        for (int y = 0; y < height; y++)
            Array.Copy(padded, (y + 1) * stride + 1, image, y * width, width);
    }

    /// <summary>Zhang-Suen test on P2..P9 for sub-iteration <paramref name="step"/>.</summary>
    static bool IsDeletable(byte[] image, int i, int[] around, int step)
    {
        int b = CountNeighbours(image, i, around);
        if (b < 2 || b > 6)
            return false;
        int a = 0;                                                           // 0→1 transitions around P2, P3, …, P9, P2
        for (int k = 0; k < 8; k++)
            if (image[i + around[k]] == 0 && image[i + around[(k + 1) % 8]] == 1)
                a++;
        if (a != 1)
            return false;
        int n = image[i + around[0]], e = image[i + around[2]], s = image[i + around[4]], w = image[i + around[6]];
        return step == 0
            ? n * e * s == 0 && e * s * w == 0
            : n * e * w == 0 && n * s * w == 0;
    }

    static int CountNeighbours(byte[] image, int i, int[] around)
    {
        int count = 0;
        foreach (int d in around)
            count += image[i + d];
        return count;
    }
}
