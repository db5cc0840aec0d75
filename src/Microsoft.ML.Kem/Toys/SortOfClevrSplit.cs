using Microsoft.ML.Kem.Data;

namespace Microsoft.ML.Kem.Toys;

/// <summary>
/// A generated Sort-of-CLEVR split held in memory: images (8-bit planes) and every image's questions. Example
/// (i, j) pairs image i with question j of each family, so a split of I images has I·QuestionsPerFamily examples and
/// every example feeds all three tasks from the same image (MODEL-SPEC §13). Each image is rendered once, in parallel;
/// its pixels depend only on its index, so the split is the same on any number of cores. <see cref="SortOfClevrBatches"/>
/// turns a split into tensors for training.
/// </summary>
public sealed class SortOfClevrSplit
{
    private readonly byte[] images;          // I×3×S×S
    private readonly ClevrQuestion[] questions;   // I×3×Q, family-major per image

    /// <summary>Generates images firstIndex … firstIndex + count − 1 of <paramref name="generator"/> and their questions (in parallel).</summary>
    public SortOfClevrSplit(SortOfClevr generator, int firstIndex, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstIndex);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        (ImageSize, QuestionsPerFamily, Images) = (generator.Options.ImageSize, generator.Options.QuestionsPerFamily, count);
        int pixels = 3 * ImageSize * ImageSize, perImage = 3 * QuestionsPerFamily;
        images = new byte[(long)count * pixels];
        questions = new ClevrQuestion[count * perImage];
        Parallel.For(0, count, i =>
        {
            var scene = generator.Scene(firstIndex + i);
            generator.Render(scene).CopyTo(images, (long)i * pixels);
            generator.Questions(scene).CopyTo(questions, i * perImage);
        });
    }

    /// <summary>Image side S.</summary>
    public int ImageSize { get; }
    /// <summary>Number of images I.</summary>
    public int Images { get; }
    /// <summary>Questions of each family per image Q.</summary>
    public int QuestionsPerFamily { get; }
    /// <summary>Examples I·Q.</summary>
    public int Examples => Images * QuestionsPerFamily;

    /// <summary>The question of family <paramref name="family"/> in example <paramref name="example"/>.</summary>
    public ClevrQuestion Question(int example, ClevrFamily family)
    {
        int image = example / QuestionsPerFamily, j = example % QuestionsPerFamily;
        return questions[image * 3 * QuestionsPerFamily + (int)family * QuestionsPerFamily + j];
    }

    /// <summary>All questions of the split (every image's 3·Q), for statistics.</summary>
    public IReadOnlyList<ClevrQuestion> AllQuestions => questions;

    /// <summary>The images, I×3×S×S 8-bit planes, each distinct image once (read only; <see cref="SortOfClevrBatches"/> copies it).</summary>
    internal byte[] Pixels => images;
}
