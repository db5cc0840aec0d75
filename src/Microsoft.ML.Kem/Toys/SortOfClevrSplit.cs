using Microsoft.ML.Kem.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Toys;

/// <summary>
/// A generated Sort-of-CLEVR split held in memory: images (8-bit planes) and every image's questions. Example
/// (i, j) pairs image i with question j of each family, so a split of I images has I·QuestionsPerFamily examples and
/// every example feeds all three tasks from the same image (MODEL-SPEC §13).
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

    /// <summary>Tensors for the examples <paramref name="indices"/>: images B×3×S×S in [0, 1], questions B×3×18, answers B×3 (int64).</summary>
    public (Tensor Images, Tensor Questions, Tensor Answers) Batch(ReadOnlySpan<int> indices)
    {
        int pixels = 3 * ImageSize * ImageSize;
        var imageValues = new float[indices.Length * pixels];
        var questionValues = new float[indices.Length * 3 * SortOfClevr.QuestionWidth];
        var answers = new long[indices.Length * 3];
        for (int b = 0; b < indices.Length; b++)
        {
            int image = indices[b] / QuestionsPerFamily;
            for (int p = 0; p < pixels; p++) imageValues[b * pixels + p] = images[(long)image * pixels + p] * (1f / 255f);
            for (int f = 0; f < 3; f++)
            {
                var question = Question(indices[b], (ClevrFamily)f);
                question.Encode().CopyTo(questionValues, (b * 3 + f) * SortOfClevr.QuestionWidth);
                answers[b * 3 + f] = question.Answer;
            }
        }
        return (tensor(imageValues, [indices.Length, 3, ImageSize, ImageSize]),
                tensor(questionValues, [indices.Length, 3, SortOfClevr.QuestionWidth]),
                tensor(answers, [indices.Length, 3]));
    }
}
