using Microsoft.ML.Kem.Data;

namespace Kem.Tests.Toys;

[TestClass]
public sealed class SortOfClevrTests
{
    private const int Red = 0, Green = 1, Blue = 2, Orange = 3, Gray = 4, Yellow = 5;
    private const ClevrShape Sq = ClevrShape.Square, Ci = ClevrShape.Circle;

    /// <summary>A hand-built scene; objects given in colour order as (x, y, shape).</summary>
    private static ClevrScene Scene(params (int X, int Y, ClevrShape Shape)[] objects) =>
        new(0, objects.Select((o, colour) => new ClevrObject(colour, o.X, o.Y, o.Shape)).ToArray());

    //  red (10,10) sq · green (20,10) ci · blue (60,60) sq · orange (40,30) ci · gray (30,20) ci · yellow (10,65) sq
    private static readonly ClevrScene Hand = Scene((10, 10, Sq), (20, 10, Ci), (60, 60, Sq), (40, 30, Ci), (30, 20, Ci), (10, 65, Sq));

    private static int Answer(ClevrFamily family, int subtype, int a, int b = -1) => SortOfClevr.Answer(Hand, family, subtype, a, b);

    [TestMethod]
    public void Non_relational_answers_shape_and_halves()
    {
        Assert.AreEqual(SortOfClevr.SquareAnswer, Answer(ClevrFamily.NonRelational, 0, Red));
        Assert.AreEqual(SortOfClevr.CircleAnswer, Answer(ClevrFamily.NonRelational, 0, Green));
        Assert.AreEqual(SortOfClevr.Yes, Answer(ClevrFamily.NonRelational, 1, Red), "x 10 < 37.5: left");
        Assert.AreEqual(SortOfClevr.No, Answer(ClevrFamily.NonRelational, 1, Blue), "x 60: right");
        Assert.AreEqual(SortOfClevr.Yes, Answer(ClevrFamily.NonRelational, 2, Orange), "y 30 < 37.5: top");
        Assert.AreEqual(SortOfClevr.No, Answer(ClevrFamily.NonRelational, 2, Yellow), "y 65: bottom");
        Assert.AreEqual(SortOfClevr.Yes, SortOfClevr.Answer(Scene((37, 38, Sq), (5, 5, Sq), (20, 5, Sq), (35, 5, Sq), (50, 5, Sq), (65, 5, Sq)), ClevrFamily.NonRelational, 1, Red), "x 37 < 37.5");
        Assert.AreEqual(SortOfClevr.No, SortOfClevr.Answer(Scene((37, 38, Sq), (5, 5, Sq), (20, 5, Sq), (35, 5, Sq), (50, 5, Sq), (65, 5, Sq)), ClevrFamily.NonRelational, 2, Red), "y 38 ≥ 37.5");
    }

    [TestMethod]
    public void Binary_answers_nearest_farthest_and_count()
    {
        Assert.AreEqual(SortOfClevr.CircleAnswer, Answer(ClevrFamily.BinaryRelational, 0, Red), "nearest to red is green (10 px), a circle");
        Assert.AreEqual(SortOfClevr.SquareAnswer, Answer(ClevrFamily.BinaryRelational, 1, Red), "farthest from red is blue (70.7 px), a square");
        Assert.AreEqual(SortOfClevr.CircleAnswer, Answer(ClevrFamily.BinaryRelational, 0, Orange), "nearest to orange is gray (14.1 px)");
        Assert.AreEqual(SortOfClevr.SquareAnswer, Answer(ClevrFamily.BinaryRelational, 1, Green), "farthest from green: yellow (55.9) vs blue (64.0) → blue");
        Assert.AreEqual(SortOfClevr.CountBase - 1 + 3, Answer(ClevrFamily.BinaryRelational, 2, Red), "3 squares, red included → answer 6");
        Assert.AreEqual(SortOfClevr.CountBase - 1 + 3, Answer(ClevrFamily.BinaryRelational, 2, Gray), "3 circles");
        var allSquares = Scene((5, 5, Sq), (20, 5, Sq), (35, 5, Sq), (50, 5, Sq), (65, 5, Sq), (5, 40, Sq));
        Assert.AreEqual(9, SortOfClevr.Answer(allSquares, ClevrFamily.BinaryRelational, 2, Blue), "six of one shape → class 9");
    }

    [TestMethod]
    public void Nearest_ties_go_to_the_lower_colour_index()
    {
        // red at (40,40); green (40,50) circle and blue (50,40) square are both 10 px away
        var tie = Scene((40, 40, Sq), (40, 50, Ci), (50, 40, Sq), (5, 5, Sq), (70, 5, Sq), (5, 70, Sq));
        Assert.AreEqual(SortOfClevr.CircleAnswer, SortOfClevr.Answer(tie, ClevrFamily.BinaryRelational, 0, Red));
    }

    [TestMethod]
    public void Ternary_answers_box_band_and_obtuse_count()
    {
        // box spanned by red (10,10) and blue (60,60) holds green (20,10: on the edge), orange (40,30), gray (30,20) → 3
        Assert.AreEqual(SortOfClevr.CountBase + 3, Answer(ClevrFamily.TernaryRelational, 0, Red, Blue));
        // box spanned by green (20,10) and gray (30,20) holds nothing
        Assert.AreEqual(SortOfClevr.CountBase + 0, Answer(ClevrFamily.TernaryRelational, 0, Green, Gray));
        // line red–blue is y = x; green (20,10) and gray (30,20) are 10 px off it → on the band
        Assert.AreEqual(SortOfClevr.Yes, Answer(ClevrFamily.TernaryRelational, 1, Red, Blue));
        // line red–green is y = 10; gray (30,20) is 10 px off it → yes
        Assert.AreEqual(SortOfClevr.Yes, Answer(ClevrFamily.TernaryRelational, 1, Red, Green));
        // line blue (60,60)–yellow (10,65): y = 60 − 0.1(x − 60); red is 55 px off, green 54, orange 32, gray 43 → no
        Assert.AreEqual(SortOfClevr.No, Answer(ClevrFamily.TernaryRelational, 1, Blue, Yellow));
        // obtuse triangles with A = red (10,10), B = green (20,10): C = blue (60,60): angle at B is obtuse;
        // orange (40,30), gray (30,20) and yellow (10,65: right angle at A counts) are obtuse or right too → 4
        Assert.AreEqual(SortOfClevr.CountBase + 4, Answer(ClevrFamily.TernaryRelational, 2, Red, Green));
        // A = red (10,10), B = blue (60,60): gray (30,20) sees AB under an obtuse angle (dot (−20,−10)·(30,40) < 0);
        // green (20,10): (−10,0)·(40,50) < 0 obtuse; orange (40,30): (−30,−20)·(20,30) < 0 obtuse; yellow (10,65): angle at
        // yellow: (0,−55)·(50,−5) = 275 > 0, at red: (50,50)·(0,55) > 0, at blue: (−50,−50)·(−50,5) > 0 → acute → 3
        Assert.AreEqual(SortOfClevr.CountBase + 3, Answer(ClevrFamily.TernaryRelational, 2, Red, Blue));
    }

    [TestMethod]
    public void Collinear_points_do_not_make_an_obtuse_triangle_and_vertical_lines_use_horizontal_distance()
    {
        var line = Scene((10, 10, Sq), (30, 10, Sq), (50, 10, Sq), (10, 40, Sq), (22, 70, Sq), (70, 70, Sq));
        // A red (10,10), B blue (50,10): green (30,10) is on the segment (180°, not counted); orange (10,40) right angle at A;
        // gray (22,70): angles all < 90; yellow (70,70): obtuse at B → 2
        Assert.AreEqual(SortOfClevr.CountBase + 2, SortOfClevr.Answer(line, ClevrFamily.TernaryRelational, 2, Red, Blue));
        // vertical line through red (10,10) and orange (10,40): gray (22,70) is 12 px to the side → on the band
        Assert.AreEqual(SortOfClevr.Yes, SortOfClevr.Answer(line, ClevrFamily.TernaryRelational, 1, Red, Orange));
        Assert.AreEqual(SortOfClevr.No, SortOfClevr.Answer(line, ClevrFamily.TernaryRelational, 1, Red, Orange, bandHalfWidth: 11));
    }

    [TestMethod]
    public void Same_seed_and_index_give_identical_scenes_images_and_questions()
    {
        var options = new SortOfClevrOptions { Seed = 3 };
        var a = new SortOfClevr(options);
        var b = new SortOfClevr(options);
        for (int i = 0; i < 5; i++)
        {
            CollectionAssert.AreEqual(a.Scene(i).Objects.ToArray(), b.Scene(i).Objects.ToArray());
            CollectionAssert.AreEqual(a.Render(a.Scene(i)), b.Render(b.Scene(i)));
            CollectionAssert.AreEqual(a.Questions(a.Scene(i)), b.Questions(b.Scene(i)));
        }
        CollectionAssert.AreNotEqual(a.Render(a.Scene(0)), a.Render(a.Scene(1)), "another index");
        CollectionAssert.AreNotEqual(a.Scene(0).Objects.ToArray(), new SortOfClevr(options with { Seed = 4 }).Scene(0).Objects.ToArray(), "another seed");
    }

    [TestMethod]
    public void Scenes_keep_objects_apart_inside_the_image_and_render_their_colours()
    {
        var generator = new SortOfClevr(new SortOfClevrOptions { Seed = 1 });
        int size = 75, plane = size * size;
        for (int i = 0; i < 200; i++)
        {
            var scene = generator.Scene(i);
            CollectionAssert.AreEqual(Enumerable.Range(0, 6).ToArray(), scene.Objects.Select(o => o.Colour).ToArray());
            foreach (var o in scene.Objects)
            {
                Assert.IsTrue(o.X >= 5 && o.X < 70 && o.Y >= 5 && o.Y < 70, $"centre ({o.X},{o.Y}) in [5,70)²");
                foreach (var p in scene.Objects.Where(p => p.Colour < o.Colour))
                    Assert.IsGreaterThanOrEqualTo(100, (o.X - p.X) * (o.X - p.X) + (o.Y - p.Y) * (o.Y - p.Y), "centres ≥ 10 px apart");
            }
            var pixels = generator.Render(scene);
            foreach (var o in scene.Objects)
            {
                var (r, g, b) = SortOfClevr.ColourValues[o.Colour];
                int centre = o.Y * size + o.X;
                Assert.AreEqual((r, g, b), (pixels[centre], pixels[plane + centre], pixels[2 * plane + centre]), "centre pixel has the object's colour");
                var (cx, cy) = (o.X + 4, o.Y + 4);            // inside a square, outside a circle of radius 5 (√32 > 5)
                if (scene.Objects.Any(p => p.Colour != o.Colour && Covers(p, cx, cy))) continue;   // painted by a neighbour
                int corner = cy * size + cx;
                bool coloured = (pixels[corner], pixels[plane + corner], pixels[2 * plane + corner]) == (r, g, b);
                Assert.AreEqual(o.Shape == ClevrShape.Square, coloured, "corner pixel tells square from circle");
            }
        }
    }

    private static bool Covers(ClevrObject o, int x, int y) => o.Shape == ClevrShape.Square
        ? Math.Abs(x - o.X) <= 5 && Math.Abs(y - o.Y) <= 5
        : (x - o.X) * (x - o.X) + (y - o.Y) * (y - o.Y) <= 25;

    [TestMethod]
    public void Questions_are_encoded_in_18_dimensions_and_answered_by_the_rules()
    {
        var generator = new SortOfClevr(new SortOfClevrOptions { Seed = 2 });
        var scene = generator.Scene(0);
        var questions = generator.Questions(scene);
        Assert.HasCount(30, questions);
        for (int q = 0; q < questions.Length; q++)
        {
            var question = questions[q];
            Assert.AreEqual((ClevrFamily)(q / 10), question.Family, "family-major order");
            var vector = question.Encode();
            Assert.HasCount(18, vector);
            Assert.AreEqual(question.Family == ClevrFamily.TernaryRelational ? 4f : 3f, vector.Sum(), "one-hots: A, (B), family, subtype");
            Assert.AreEqual(1f, vector[question.ColourA]);
            Assert.AreEqual(1f, vector[12 + (int)question.Family]);
            Assert.AreEqual(1f, vector[15 + question.Subtype]);
            if (question.Family == ClevrFamily.TernaryRelational)
            {
                Assert.AreNotEqual(question.ColourA, question.ColourB);
                Assert.AreEqual(1f, vector[6 + question.ColourB]);
            }
            else Assert.AreEqual(-1, question.ColourB);
            Assert.AreEqual(SortOfClevr.Answer(scene, question.Family, question.Subtype, question.ColourA, question.ColourB), question.Answer);
        }
    }

    // 3,000 images × 30 questions: 90,000 colour draws for A (and 30,000 for B); the standard error of a frequency
    // near 1/6 is ≈ 0.0013, so a tolerance of 0.006 is more than 4 standard errors.
    private static readonly Lazy<(ClevrQuestion[] Balanced, ClevrQuestion[] LongTail)> Splits = new(() =>
    {
        ClevrQuestion[] Questions(ClevrColourLaw law)
        {
            var generator = new SortOfClevr(new SortOfClevrOptions { Seed = 5, ColourLaw = law });
            return Enumerable.Range(0, 3000).AsParallel().AsOrdered().SelectMany(i => generator.Questions(generator.Scene(i))).ToArray();
        }
        return (Questions(ClevrColourLaw.Balanced), Questions(ClevrColourLaw.LongTail));
    });

    private static double[] Frequencies(IEnumerable<int> colours)
    {
        var counts = new double[6];
        int total = 0;
        foreach (var c in colours) { counts[c]++; total++; }
        return counts.Select(c => c / total).ToArray();
    }

    [TestMethod]
    public void Balanced_split_draws_colours_uniformly()
    {
        var questions = Splits.Value.Balanced;
        var a = Frequencies(questions.Select(q => q.ColourA));
        var b = Frequencies(questions.Where(q => q.ColourB >= 0).Select(q => q.ColourB));
        for (int c = 0; c < 6; c++)
        {
            Assert.AreEqual(1.0 / 6, a[c], 0.006, $"colour A {SortOfClevr.ColourNames[c]}");
            Assert.AreEqual(1.0 / 6, b[c], 0.01, $"colour B {SortOfClevr.ColourNames[c]}");
        }
    }

    [TestMethod]
    public void Long_tailed_split_follows_the_inverse_square_law_and_keeps_the_images()
    {
        var expected = SortOfClevr.Law(ClevrColourLaw.LongTail, 2.0);
        double[] spec = [0.6705, 0.1676, 0.0745, 0.0419, 0.0268, 0.0186];   // MODEL-SPEC §13
        for (int c = 0; c < 6; c++) Assert.AreEqual(spec[c], expected[c], 5e-5, "law P(r) ∝ r⁻²");

        var (balanced, longTail) = Splits.Value;
        var a = Frequencies(longTail.Select(q => q.ColourA));
        for (int c = 0; c < 6; c++) Assert.AreEqual(expected[c], a[c], 0.006, $"colour A {SortOfClevr.ColourNames[c]}");
        // B follows the same law without A's colour: P(B = c) = Σ_a P(a) P(c) / (1 − P(a))
        var b = Frequencies(longTail.Where(q => q.ColourB >= 0).Select(q => q.ColourB));
        for (int c = 0; c < 6; c++)
        {
            double pb = Enumerable.Range(0, 6).Where(x => x != c).Sum(x => expected[x] * expected[c] / (1 - expected[x]));
            Assert.AreEqual(pb, b[c], 0.01, $"colour B {SortOfClevr.ColourNames[c]}");
        }
        // Only the colours differ: the families and subtypes of the two splits are identical, and so are the images.
        CollectionAssert.AreEqual(balanced.Select(q => (q.Family, q.Subtype)).ToArray(), longTail.Select(q => (q.Family, q.Subtype)).ToArray());
        var one = new SortOfClevr(new SortOfClevrOptions { Seed = 5 });
        var other = new SortOfClevr(new SortOfClevrOptions { Seed = 5, ColourLaw = ClevrColourLaw.LongTail });
        CollectionAssert.AreEqual(one.Render(one.Scene(17)), other.Render(other.Scene(17)));
    }

    [TestMethod]
    public void Every_answer_class_occurs_and_subtypes_are_balanced()
    {
        var questions = Splits.Value.Balanced;
        var answers = questions.Select(q => q.Answer).ToHashSet();
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 10).ToArray(), answers.ToArray(), "answers 0…9 all occur");
        foreach (var family in Enum.GetValues<ClevrFamily>())
        {
            var subtypes = Frequencies(questions.Where(q => q.Family == family).Select(q => q.Subtype));
            for (int s = 0; s < 3; s++) Assert.AreEqual(1.0 / 3, subtypes[s], 0.01, $"{family} subtype {s}");
        }
    }
}
