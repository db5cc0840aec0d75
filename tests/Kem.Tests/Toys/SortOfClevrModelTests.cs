using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Toys;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Toys;

[TestClass]
public sealed class SortOfClevrModelTests
{
    private static SortOfClevrModelOptions Small(InteractionKind kind, ClevrFrontEnd frontEnd = ClevrFrontEnd.Patches) => new()
    {
        Width = 32, Heads = 4, ImageDepth = 1, EncoderDepth = 1, DecoderDepth = 1, FrontEnd = frontEnd,
        Interaction = new InteractionOptions { Kind = kind, MemorySlots = 8, TopK = 5 },
    };

    private static readonly Lazy<SortOfClevrSplit> Split = new(() => new SortOfClevrSplit(new SortOfClevr(new SortOfClevrOptions { Seed = 1 }), 0, 8));

    [TestMethod]
    public void Split_batches_hold_the_image_and_one_question_of_each_family_per_example()
    {
        var split = Split.Value;
        Assert.AreEqual(80, split.Examples);
        using var scope = NewDisposeScope();
        using var store = new SortOfClevrBatches(split);
        var (images, questions, answers) = store.Batch([0, 13]);
        CollectionAssert.AreEqual(new long[] { 2, 3, 75, 75 }, images.shape);
        CollectionAssert.AreEqual(new long[] { 2, 3, 18 }, questions.shape);
        CollectionAssert.AreEqual(new long[] { 2, 3 }, answers.shape);
        Assert.IsTrue(images.max().item<float>() <= 1f && images.min().item<float>() >= 0f, "pixels in [0, 1]");
        var generator = new SortOfClevr(new SortOfClevrOptions { Seed = 1 });
        var scene = generator.Scene(1);                                   // example 13 = image 1, question 3 of each family
        var expected = generator.Questions(scene);
        for (int f = 0; f < 3; f++)
        {
            Assert.AreEqual(expected[f * 10 + 3], split.Question(13, (ClevrFamily)f));
            Assert.AreEqual(expected[f * 10 + 3].Answer, answers[1, f].item<long>());
            CollectionAssert.AreEqual(expected[f * 10 + 3].Encode(), questions[1, f].data<float>().ToArray());
        }
        var rendered = generator.Render(scene).Select(v => v / 255f).ToArray();
        CollectionAssert.AreEqual(rendered, images[1].contiguous().data<float>().ToArray());
    }

    [TestMethod]
    public void Question_prior_answers_the_most_frequent_training_answer_of_each_family_and_subtype()
    {
        var train = Split.Value;
        var test = new SortOfClevrSplit(new SortOfClevr(new SortOfClevrOptions { Seed = 9 }), 0, 6);
        var majority = train.AllQuestions.GroupBy(q => (q.Family, q.Subtype))
            .ToDictionary(g => g.Key, g => g.GroupBy(q => q.Answer).OrderByDescending(a => a.Count()).ThenBy(a => a.Key).First().Key);
        double expected = Enumerable.Range(0, 3).Average(f =>
            (double)test.AllQuestions.Count(q => (int)q.Family == f && q.Answer == majority[(q.Family, q.Subtype)]) / test.Examples);
        Assert.AreEqual(expected, SortOfClevrExperiment.QuestionPrior(train, test), 1e-12);
    }

    [TestMethod]
    [DataRow(InteractionKind.Kem, ClevrFrontEnd.Patches)]
    [DataRow(InteractionKind.StableKem, ClevrFrontEnd.Patches)]
    [DataRow(InteractionKind.Kem, ClevrFrontEnd.CnnCells)]
    public void Model_maps_images_and_questions_to_three_answer_distributions(InteractionKind kind, ClevrFrontEnd frontEnd)
    {
        manual_seed(1);
        using var model = new SortOfClevrModel(Small(kind, frontEnd));
        using var scope = NewDisposeScope();
        using var store = new SortOfClevrBatches(Split.Value);
        var (images, questions, answers) = store.Batch([0, 1, 2, 3]);
        var tokens = model.EncodeTasks(images, questions);
        CollectionAssert.AreEqual(new long[] { 4, 3, 27, 32 }, tokens.shape, "CLS + question + 25 cells per family");
        var logits = model.call(images, questions);
        CollectionAssert.AreEqual(new long[] { 4, 3, 10 }, logits.shape);
        var trace = ((KnowledgeExtraction)model.Interaction).Trace(tokens);
        CollectionAssert.AreEqual(new long[] { 4, 4, 8, 81 }, trace.RetrieveWeights.shape, "8 slots read from 3·27 tokens");
        nn.functional.cross_entropy(logits.reshape(-1, 10), answers.reshape(-1)).backward();
        Assert.IsTrue(model.parameters().All(p => p.grad is not null), "every parameter gets a gradient");
    }

    [TestMethod]
    [DataRow(ClevrFrontEnd.Patches)]
    [DataRow(ClevrFrontEnd.CnnCells)]
    public void Every_block_has_the_spec_dropout_of_0_1_which_acts_in_training_mode_only(ClevrFrontEnd frontEnd)
    {
        Assert.AreEqual(0.1, new SortOfClevrModelOptions().Dropout, "MODEL-SPEC §13: dropout 0.1");
        manual_seed(4);
        using var model = new SortOfClevrModel(Small(InteractionKind.Kem, frontEnd));
        var blocks = model.modules().OfType<TransformerBlock>().ToArray();
        Assert.HasCount(1 + 3 + 3, blocks, "image block, one encoder and one decoder block per family");
        Assert.IsTrue(blocks.All(b => b.Dropout == 0.1), "every block drops with p = 0.1");

        using var scope = NewDisposeScope();
        using var store = new SortOfClevrBatches(Split.Value);
        var (images, questions, _) = store.Batch([0, 1, 2, 3]);
        static bool Same(Tensor a, Tensor b) => a.eq(b).all().item<bool>();
        model.train();
        Assert.IsFalse(Same(model.call(images, questions), model.call(images, questions)), "training mode: two forwards differ");
        model.eval();
        Assert.IsTrue(Same(model.call(images, questions), model.call(images, questions)), "eval mode: deterministic");

        manual_seed(4);
        using var without = new SortOfClevrModel(Small(InteractionKind.Kem, frontEnd) with { Dropout = 0 });
        without.train();
        Assert.IsTrue(Same(without.call(images, questions), without.call(images, questions)), "Dropout = 0: training mode is deterministic too");
    }

    [TestMethod]
    public void A_tiny_run_trains_and_scores_every_family_and_colour()
    {
        var split = Split.Value;
        var training = new SortOfClevrTrainingOptions { Epochs = 1, BatchSize = 16, LearningRate = 1e-3 };
        var result = SortOfClevrExperiment.Run(split, split, Small(InteractionKind.Kem), training);
        Assert.AreEqual(5, result.Steps, "80 examples / 16 per batch");
        Assert.AreEqual(1.0, result.Epochs);
        Assert.HasCount(3, result.FamilyAccuracy);
        Assert.HasCount(6, result.ColourAccuracy);
        Assert.AreEqual(result.FamilyAccuracy.Average(), result.Accuracy, 1e-12);
        Assert.IsTrue(result.FamilyAccuracy.All(a => a >= 0 && a <= 1) && double.IsFinite(result.FinalTrainLoss));
    }

    [TestMethod]
    public void A_spent_time_budget_stops_training_after_one_step_and_still_evaluates()
    {
        var split = Split.Value;
        var training = new SortOfClevrTrainingOptions { Epochs = 3, BatchSize = 16, LearningRate = 1e-3, MaxTrainingTime = TimeSpan.Zero };
        var result = SortOfClevrExperiment.Run(split, split, Small(InteractionKind.Kem), training);
        Assert.AreEqual(1, result.Steps, "the budget is checked after each step");
        Assert.AreEqual(0.2, result.Epochs, 1e-12, "1 of 5 steps per epoch");
        Assert.IsTrue(double.IsFinite(result.FinalTrainLoss), "the partial epoch's loss");
        Assert.IsTrue(result.TrainingTime <= result.Elapsed);
        Assert.HasCount(3, result.FamilyAccuracy);
    }
}
