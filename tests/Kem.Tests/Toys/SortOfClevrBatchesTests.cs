using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Toys;
using static TorchSharp.torch;

namespace Kem.Tests.Toys;

[TestClass]
public sealed class SortOfClevrBatchesTests
{
    private static readonly SortOfClevrOptions Data = new() { Seed = 3, QuestionsPerFamily = 4 };

    /// <summary>The batch as every training step used to build it: render each example's image on the host, scale each byte by 1/255 in float, encode the questions.</summary>
    private static (float[] Images, float[] Questions, long[] Answers) RenderedPerStep(SortOfClevr generator, int firstIndex, int[] examples)
    {
        int q = generator.Options.QuestionsPerFamily;
        var images = new List<float>();
        var questions = new List<float>();
        var answers = new List<long>();
        foreach (int e in examples)
        {
            var scene = generator.Scene(firstIndex + e / q);
            images.AddRange(generator.Render(scene).Select(v => v * (1f / 255f)));
            var all = generator.Questions(scene);
            for (int f = 0; f < 3; f++)
            {
                var question = all[f * q + e % q];
                questions.AddRange(question.Encode());
                answers.Add(question.Answer);
            }
        }
        return (images.ToArray(), questions.ToArray(), answers.ToArray());
    }

    [TestMethod]
    [DataRow(0)]
    [DataRow(SortOfClevrExperiment.TestFirstIndex)]
    public void Store_batches_equal_the_per_step_rendering_bit_for_bit(int firstIndex)
    {
        var generator = new SortOfClevr(Data with { ColourLaw = ClevrColourLaw.LongTail });
        var split = new SortOfClevrSplit(generator, firstIndex, 6);
        using var store = new SortOfClevrBatches(split);
        var order = Enumerable.Range(0, split.Examples).ToArray();
        new Random(5).Shuffle(order);
        foreach (var examples in order.Chunk(7))
        {
            using var scope = NewDisposeScope();
            var (images, questions, answers) = store.Batch(examples);
            var expected = RenderedPerStep(generator, firstIndex, examples);
            CollectionAssert.AreEqual(new long[] { examples.Length, 3, 75, 75 }, images.shape);
            Assert.AreEqual(ScalarType.Float32, images.dtype);
            CollectionAssert.AreEqual(expected.Images.Select(BitConverter.SingleToInt32Bits).ToArray(),
                images.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits).ToArray(), "pixels, bit for bit");
            CollectionAssert.AreEqual(new long[] { examples.Length, 3, SortOfClevr.QuestionWidth }, questions.shape);
            CollectionAssert.AreEqual(expected.Questions, questions.data<float>().ToArray());
            CollectionAssert.AreEqual(expected.Answers, answers.data<long>().ToArray());
        }
    }

    [TestMethod]
    public void Batches_gathered_from_an_index_tensor_match_those_from_host_indices()
    {
        var split = new SortOfClevrSplit(new SortOfClevr(Data), 0, 3);
        using var store = new SortOfClevrBatches(split);
        int[] order = [11, 0, 4, 7, 3];
        using var scope = NewDisposeScope();
        var epoch = store.Indices(order);
        var fromTensor = store.Batch(epoch.narrow(0, 1, 3));
        var fromHost = store.Batch(order.AsSpan(1, 3));
        Assert.IsTrue(fromTensor.Images.equal(fromHost.Images).all().item<bool>());
        Assert.IsTrue(fromTensor.Questions.equal(fromHost.Questions).all().item<bool>());
        Assert.IsTrue(fromTensor.Answers.equal(fromHost.Answers).all().item<bool>());
        Assert.IsFalse(fromTensor.Images[0].equal(fromTensor.Images[1]).all().item<bool>(), "examples 0 and 4 show images 0 and 1");
        Assert.IsTrue(fromTensor.Images[0].equal(store.Batch([3]).Images[0]).all().item<bool>(), "examples 0 and 3 share image 0");
    }

    [TestMethod]
    public void Split_pixels_do_not_depend_on_how_many_threads_rendered_them()
    {
        var generator = new SortOfClevr(Data);
        var split = new SortOfClevrSplit(generator, 10, 5);
        var serial = Enumerable.Range(10, 5).SelectMany(i => generator.Render(generator.Scene(i))).ToArray();
        CollectionAssert.AreEqual(serial, split.Pixels, "image i's pixels depend only on its index");
    }
}
