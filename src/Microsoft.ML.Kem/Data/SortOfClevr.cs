namespace Microsoft.ML.Kem.Data;

/// <summary>Object shapes of Sort-of-CLEVR.</summary>
public enum ClevrShape
{
    /// <summary>A filled square, ±<see cref="SortOfClevrOptions.ObjectSize"/> pixels around its centre.</summary>
    Square,
    /// <summary>A filled disc of radius <see cref="SortOfClevrOptions.ObjectSize"/>.</summary>
    Circle,
}

/// <summary>The three question families; each is one task of the toy multi-task model (MODEL-SPEC §13).</summary>
public enum ClevrFamily
{
    /// <summary>Shape of A; is A in the left half; is A in the top half.</summary>
    NonRelational,
    /// <summary>Shape of the object nearest to A; shape of the object farthest from A; how many objects share A's shape.</summary>
    BinaryRelational,
    /// <summary>Objects inside the box spanned by A and B; any object on the band through A and B; obtuse triangles ABC.</summary>
    TernaryRelational,
}

/// <summary>How the colours of the objects a question asks about are drawn (MODEL-SPEC §13, "Imbalance").</summary>
public enum ClevrColourLaw
{
    /// <summary>Uniform over the six colours (the balanced baseline; always used for test sets).</summary>
    Balanced,
    /// <summary>P(rank r) ∝ r^(−exponent) over the fixed ranking red, green, blue, orange, gray, yellow.</summary>
    LongTail,
}

/// <summary>One object: colour index (0 … 5, see <see cref="SortOfClevr.ColourNames"/>), integer centre (X right, Y down) and shape.</summary>
public readonly record struct ClevrObject(int Colour, int X, int Y, ClevrShape Shape);

/// <summary>A generated scene: one object per colour, in colour order.</summary>
public sealed record ClevrScene(int Index, IReadOnlyList<ClevrObject> Objects);

/// <summary>
/// One question. <see cref="ColourB"/> is −1 except for ternary questions. <see cref="Answer"/> is the class
/// 0 yes, 1 no, 2 square, 3 circle, 4 … 9 counts (see <see cref="SortOfClevr"/>).
/// </summary>
public readonly record struct ClevrQuestion(ClevrFamily Family, int Subtype, int ColourA, int ColourB, int Answer)
{
    /// <summary>The 18-dimensional question vector: [0:6) colour A, [6:12) colour B (ternary only), [12:15) family, [15:18) subtype.</summary>
    public float[] Encode()
    {
        var vector = new float[SortOfClevr.QuestionWidth];
        EncodeInto(vector);
        return vector;
    }

    /// <summary>Writes <see cref="Encode"/>'s vector into <paramref name="vector"/> (18 values, all overwritten).</summary>
    public void EncodeInto(Span<float> vector)
    {
        if (vector.Length != SortOfClevr.QuestionWidth) throw new ArgumentException($"A question vector has {SortOfClevr.QuestionWidth} values, got {vector.Length}.", nameof(vector));
        vector.Clear();
        vector[ColourA] = 1f;
        if (ColourB >= 0) vector[SortOfClevr.Colours + ColourB] = 1f;
        vector[2 * SortOfClevr.Colours + (int)Family] = 1f;
        vector[2 * SortOfClevr.Colours + 3 + Subtype] = 1f;
    }
}

/// <summary>Settings of <see cref="SortOfClevr"/>; defaults are the public Sort-of-CLEVR generator's (MODEL-SPEC §13).</summary>
public sealed record SortOfClevrOptions
{
    /// <summary>Dataset seed; scene i is a pure function of (Seed, i), its questions of (Seed, i, colour law, exponent).</summary>
    public long Seed { get; init; }

    /// <summary>Side of the square image in pixels. Default 75.</summary>
    public int ImageSize { get; init; } = 75;

    /// <summary>Half side of a square and radius of a circle. Default 5.</summary>
    public int ObjectSize { get; init; } = 5;

    /// <summary>Questions of each family per image. Default 10.</summary>
    public int QuestionsPerFamily { get; init; } = 10;

    /// <summary>How the colours of objects A and B are drawn.</summary>
    public ClevrColourLaw ColourLaw { get; init; } = ClevrColourLaw.Balanced;

    /// <summary>Power-law exponent of <see cref="ClevrColourLaw.LongTail"/> (paper: 2).</summary>
    public double Exponent { get; init; } = 2.0;

    /// <summary>Vertical half width of the ternary "on the band" question, pixels. Default 12 (public generator).</summary>
    public int BandHalfWidth { get; init; } = 12;

    /// <summary>Throws with a message that says what to change when a setting is out of range.</summary>
    public void Validate()
    {
        if (ObjectSize < 1 || ImageSize < 8 * ObjectSize)
            throw new ArgumentOutOfRangeException(nameof(ImageSize), $"Image {ImageSize} px with objects of size {ObjectSize}: need ObjectSize ≥ 1 and ImageSize ≥ 8·ObjectSize so that six objects fit.");
        if (QuestionsPerFamily < 1) throw new ArgumentOutOfRangeException(nameof(QuestionsPerFamily), QuestionsPerFamily, "QuestionsPerFamily must be ≥ 1.");
        if (!(Exponent >= 0) || double.IsInfinity(Exponent)) throw new ArgumentOutOfRangeException(nameof(Exponent), Exponent, "Exponent must be finite and ≥ 0.");
        if (BandHalfWidth < 0) throw new ArgumentOutOfRangeException(nameof(BandHalfWidth), BandHalfWidth, "BandHalfWidth must be ≥ 0.");
    }
}

/// <summary>
/// Our Sort-of-CLEVR generator (Santoro et al. 2017, as set up in the SGW code base; MODEL-SPEC §13). A white
/// <c>ImageSize</c>² image holds six objects, one per colour (red, green, blue, orange, gray, yellow); each is a square
/// or a circle with probability ½, its integer centre uniform in [s, size − s)² and re-drawn until it is at least 2s
/// from every earlier centre. Every image has <c>QuestionsPerFamily</c> questions of each family:
/// <list type="bullet">
/// <item>non-relational (A): 0 shape of A; 1 is A in the left half (x &lt; size/2); 2 is A in the top half (y &lt; size/2);</item>
/// <item>binary (A): 0 shape of the object nearest to A; 1 shape of the object farthest from A; 2 how many objects
/// share A's shape, A included (answer count + 3);</item>
/// <item>ternary (A, B ≠ A): 0 how many other objects lie in the closed axis-aligned box spanned by A and B (count + 4);
/// 1 does any other object lie within <c>BandHalfWidth</c> px vertically of the line through A and B (horizontally for
/// a vertical line); 2 for how many other objects C the triangle ABC is obtuse (a non-degenerate triangle with an angle
/// ≥ 90°; count + 4).</item>
/// </list>
/// Answers: 0 yes, 1 no, 2 square, 3 circle, 4 … 9 counts. Ties in nearest/farthest go to the lower colour index.
/// Unlike the public generator, ternary colours come from all six colours (it drew them from five).
/// Scenes do not depend on the colour law, so a balanced and a long-tailed split share their images and differ only in
/// the questions. Deterministic: one SplitMix64 stream per (seed, image) for the scene and another for its questions;
/// both colour laws consume the same draws, so the two splits have the same families and subtypes, and a colour is the
/// law's inverse CDF at the same uniform draw.
/// </summary>
public sealed class SortOfClevr
{
    /// <summary>Number of colours and of objects per image.</summary>
    public const int Colours = 6;

    /// <summary>Width of <see cref="ClevrQuestion.Encode"/>'s vector.</summary>
    public const int QuestionWidth = 18;

    /// <summary>Answer classes.</summary>
    public const int AnswerClasses = 10;

    /// <summary>Answer class indices.</summary>
    public const int Yes = 0, No = 1, SquareAnswer = 2, CircleAnswer = 3, CountBase = 4;

    /// <summary>Colour names in rank order (rank 1 = red, the most frequent colour of the long-tailed law).</summary>
    public static IReadOnlyList<string> ColourNames { get; } = ["red", "green", "blue", "orange", "gray", "yellow"];

    /// <summary>Colour RGB values (0 … 255), as in the public generator.</summary>
    public static IReadOnlyList<(byte R, byte G, byte B)> ColourValues { get; } =
        [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 156, 0), (128, 128, 128), (255, 255, 0)];

    private const ulong QuestionStream = 0x5157_4543_4C45_5652UL;   // separates question draws from scene draws

    /// <summary>Creates a generator; <paramref name="options"/> defaults to <see cref="SortOfClevrOptions"/>' defaults.</summary>
    public SortOfClevr(SortOfClevrOptions? options = null)
    {
        Options = options ?? new SortOfClevrOptions();
        Options.Validate();
        ColourProbabilities = Law(Options.ColourLaw, Options.Exponent);
    }

    /// <summary>The settings every scene and question is generated with.</summary>
    public SortOfClevrOptions Options { get; }

    /// <summary>P(colour) of object A under <see cref="SortOfClevrOptions.ColourLaw"/>, by colour index (sums to 1).</summary>
    public IReadOnlyList<double> ColourProbabilities { get; }

    /// <summary>P(rank r) ∝ r^(−exponent) for r = 1 … 6 (uniform for <see cref="ClevrColourLaw.Balanced"/>).</summary>
    public static double[] Law(ClevrColourLaw law, double exponent = 2.0)
    {
        var weights = Enumerable.Range(1, Colours).Select(r => law == ClevrColourLaw.Balanced ? 1.0 : Math.Pow(r, -exponent)).ToArray();
        double total = weights.Sum();
        return weights.Select(w => w / total).ToArray();
    }

    /// <summary>Scene <paramref name="index"/> (≥ 0); independent of the colour law.</summary>
    public ClevrScene Scene(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        int size = Options.ImageSize, s = Options.ObjectSize;
        var random = SceneRandom.ForImage(Options.Seed, index);
        var objects = new ClevrObject[Colours];
        for (int colour = 0; colour < Colours; colour++)
        {
            int x, y;
            do
            {
                x = s + random.NextInt(size - 2 * s);
                y = s + random.NextInt(size - 2 * s);
            }
            while (objects.Take(colour).Any(o => Squared(o.X - x, o.Y - y) < 4 * s * s));
            objects[colour] = new ClevrObject(colour, x, y, random.NextInt(2) == 0 ? ClevrShape.Square : ClevrShape.Circle);
        }
        return new ClevrScene(index, objects);
    }

    /// <summary>Renders <paramref name="scene"/> as 3×size×size planes of 8-bit values (white background).</summary>
    public byte[] Render(ClevrScene scene)
    {
        int size = Options.ImageSize, s = Options.ObjectSize, plane = size * size;
        var pixels = new byte[3 * plane];
        Array.Fill(pixels, (byte)255);
        foreach (var o in scene.Objects)
        {
            var (r, g, b) = ColourValues[o.Colour];
            for (int y = Math.Max(0, o.Y - s); y <= Math.Min(size - 1, o.Y + s); y++)
                for (int x = Math.Max(0, o.X - s); x <= Math.Min(size - 1, o.X + s); x++)
                {
                    if (o.Shape == ClevrShape.Circle && Squared(x - o.X, y - o.Y) > s * s) continue;
                    int at = y * size + x;
                    (pixels[at], pixels[plane + at], pixels[2 * plane + at]) = (r, g, b);
                }
        }
        return pixels;
    }

    /// <summary>The questions of scene <paramref name="scene"/>: <c>QuestionsPerFamily</c> of each family, family-major.</summary>
    public ClevrQuestion[] Questions(ClevrScene scene)
    {
        var random = SceneRandom.ForImage(unchecked(Options.Seed ^ (long)QuestionStream), scene.Index);
        int perFamily = Options.QuestionsPerFamily;
        var questions = new ClevrQuestion[3 * perFamily];
        for (int f = 0; f < 3; f++)
            for (int q = 0; q < perFamily; q++)
            {
                var family = (ClevrFamily)f;
                int subtype = random.NextInt(3);
                int a = DrawColour(ref random, exclude: -1);
                int b = family == ClevrFamily.TernaryRelational ? DrawColour(ref random, exclude: a) : -1;
                questions[f * perFamily + q] = new ClevrQuestion(family, subtype, a, b, Answer(scene, family, subtype, a, b, Options.ImageSize, Options.BandHalfWidth));
            }
        return questions;
    }

    /// <summary>
    /// The answer class of a question about <paramref name="scene"/> (objects looked up by colour); the rules are in the
    /// class summary. <paramref name="colourB"/> is used by ternary questions only.
    /// </summary>
    public static int Answer(ClevrScene scene, ClevrFamily family, int subtype, int colourA, int colourB = -1, int imageSize = 75, int bandHalfWidth = 12)
    {
        var objects = scene.Objects;
        var a = objects.Single(o => o.Colour == colourA);
        if (subtype is < 0 or > 2) throw new ArgumentOutOfRangeException(nameof(subtype), subtype, "Subtypes are 0, 1, 2.");
        switch (family)
        {
            case ClevrFamily.NonRelational:
                return subtype switch
                {
                    0 => ShapeAnswer(a.Shape),
                    1 => 2 * a.X < imageSize ? Yes : No,
                    _ => 2 * a.Y < imageSize ? Yes : No,
                };
            case ClevrFamily.BinaryRelational:
            {
                var others = objects.Where(o => o.Colour != colourA).ToArray();
                if (subtype == 2) return CountBase - 1 + objects.Count(o => o.Shape == a.Shape);
                var distances = others.Select(o => Squared(o.X - a.X, o.Y - a.Y)).ToArray();
                int pick = subtype == 0 ? Array.IndexOf(distances, distances.Min()) : Array.IndexOf(distances, distances.Max());
                return ShapeAnswer(others[pick].Shape);
            }
            case ClevrFamily.TernaryRelational:
            {
                if (colourB == colourA || colourB < 0) throw new ArgumentException("A ternary question needs a colour B different from A.", nameof(colourB));
                var b = objects.Single(o => o.Colour == colourB);
                var others = objects.Where(o => o.Colour != colourA && o.Colour != colourB).ToArray();
                return subtype switch
                {
                    0 => CountBase + others.Count(c => InBox(a, b, c)),
                    1 => others.Any(c => OnBand(a, b, c, bandHalfWidth)) ? Yes : No,
                    _ => CountBase + others.Count(c => Obtuse(a, b, c)),
                };
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(family), family, "Unknown question family.");
        }
    }

    private int DrawColour(ref SceneRandom random, int exclude)
    {
        // Inverse CDF of the colour law, renormalised without the excluded colour.
        double total = 0;
        for (int c = 0; c < Colours; c++) if (c != exclude) total += ColourProbabilities[c];
        double u = (random.NextUInt64() >> 11) * (1.0 / 9007199254740992.0) * total;
        int last = -1;
        for (int c = 0; c < Colours; c++)
        {
            if (c == exclude) continue;
            last = c;
            u -= ColourProbabilities[c];
            if (u < 0) return c;
        }
        return last;   // only reached through rounding at u ≈ total
    }

    private static int ShapeAnswer(ClevrShape shape) => shape == ClevrShape.Square ? SquareAnswer : CircleAnswer;

    private static int Squared(int dx, int dy) => dx * dx + dy * dy;

    private static bool InBox(ClevrObject a, ClevrObject b, ClevrObject c) =>
        Math.Min(a.X, b.X) <= c.X && c.X <= Math.Max(a.X, b.X) && Math.Min(a.Y, b.Y) <= c.Y && c.Y <= Math.Max(a.Y, b.Y);

    private static bool OnBand(ClevrObject a, ClevrObject b, ClevrObject c, int halfWidth)
    {
        if (a.X == b.X) return Math.Abs(c.X - a.X) <= halfWidth;              // vertical line: horizontal distance
        double lineY = a.Y + (double)(b.Y - a.Y) / (b.X - a.X) * (c.X - a.X);  // y of the line through A and B at C's x
        return Math.Abs(c.Y - lineY) <= halfWidth;
    }

    private static bool Obtuse(ClevrObject a, ClevrObject b, ClevrObject c)
    {
        // Exact in integers: degenerate (collinear) triangles have a 180° angle and do not count; otherwise the
        // triangle is obtuse (or right) when the two edges at some vertex have a non-positive dot product.
        long cross = (long)(b.X - a.X) * (c.Y - a.Y) - (long)(b.Y - a.Y) * (c.X - a.X);
        if (cross == 0) return false;
        static long Dot(ClevrObject at, ClevrObject p, ClevrObject q) => (long)(p.X - at.X) * (q.X - at.X) + (long)(p.Y - at.Y) * (q.Y - at.Y);
        return Dot(a, b, c) <= 0 || Dot(b, a, c) <= 0 || Dot(c, a, b) <= 0;
    }
}
