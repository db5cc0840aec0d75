using Microsoft.ML.Kem.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Toys;

/// <summary>
/// Every example of a <see cref="SortOfClevrSplit"/> as tensors on one device, built once: the split's images as 8-bit
/// planes I×3×S×S (each distinct image once; 10,000 images at S = 75 take 169 MB), the encoded questions E×3×18 and the
/// answers E×3 (E = I·Q examples). A batch is gathered from these with <c>index_select</c> on the device, and only its
/// images are converted to float there, so a training step neither renders nor copies images from the host.
/// </summary>
public sealed class SortOfClevrBatches : IDisposable
{
    private readonly Tensor images;       // I×3×S×S uint8
    private readonly Tensor questions;    // E×3×18 float32
    private readonly Tensor answers;      // E×3 int64

    /// <summary>Copies <paramref name="split"/>'s images, questions and answers to <paramref name="device"/> (CPU when null).</summary>
    public SortOfClevrBatches(SortOfClevrSplit split, Device? device = null)
    {
        Split = split;
        Device = device ?? CPU;
        int size = split.ImageSize, width = SortOfClevr.QuestionWidth;
        var questionValues = new float[(long)split.Examples * 3 * width];
        var answerValues = new long[split.Examples * 3];
        for (int e = 0; e < split.Examples; e++)
            for (int f = 0; f < 3; f++)
            {
                var question = split.Question(e, (ClevrFamily)f);
                question.EncodeInto(questionValues.AsSpan((e * 3 + f) * width, width));
                answerValues[e * 3 + f] = question.Answer;
            }
        images = tensor(split.Pixels, [split.Images, 3, size, size], device: Device);
        questions = tensor(questionValues, [split.Examples, 3, width], device: Device);
        answers = tensor(answerValues, [split.Examples, 3], device: Device);
    }

    /// <summary>The split these tensors hold (its questions stay readable on the host).</summary>
    public SortOfClevrSplit Split { get; }

    /// <summary>Where the tensors live and where batches are gathered.</summary>
    public Device Device { get; }

    /// <summary>Examples E of the split.</summary>
    public int Examples => Split.Examples;

    /// <summary>Example indices as an int64 tensor on <see cref="Device"/> (one copy, e.g. an epoch's shuffled order).</summary>
    public Tensor Indices(ReadOnlySpan<int> examples)
    {
        var values = new long[examples.Length];
        for (int i = 0; i < values.Length; i++) values[i] = examples[i];
        return tensor(values, device: Device);
    }

    /// <summary>
    /// The examples <paramref name="indices"/> (int64 on <see cref="Device"/>, length B): images B×3×S×S as float32
    /// pixel/255 in [0, 1], questions B×3×18, answers B×3 (int64). Example e shows image e / Q.
    /// </summary>
    public (Tensor Images, Tensor Questions, Tensor Answers) Batch(Tensor indices)
    {
        var imageIndices = indices.div(Split.QuestionsPerFamily, RoundingMode.floor);
        var pixels = images.index_select(0, imageIndices).to_type(ScalarType.Float32).mul_(1f / 255f);
        return (pixels, questions.index_select(0, indices), answers.index_select(0, indices));
    }

    /// <summary><see cref="Batch(Tensor)"/> for indices given on the host.</summary>
    public (Tensor Images, Tensor Questions, Tensor Answers) Batch(ReadOnlySpan<int> examples)
    {
        using var indices = Indices(examples);
        return Batch(indices);
    }

    /// <summary>Frees the device tensors.</summary>
    public void Dispose()
    {
        images.Dispose();
        questions.Dispose();
        answers.Dispose();
    }
}
