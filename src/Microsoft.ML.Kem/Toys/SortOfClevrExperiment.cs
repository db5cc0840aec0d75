using System.Diagnostics;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Toys;

/// <summary>
/// The Sort-of-CLEVR protocol (MODEL-SPEC §13). Defaults are the full protocol: 10,000 train / 2,000 test images,
/// Adam 1e-4, batch 64, 100 epochs; the test set is always balanced.
/// </summary>
public sealed record SortOfClevrTrainingOptions
{
    /// <summary>Training images (each with 10 questions per family).</summary>
    public int TrainImages { get; init; } = 10_000;
    /// <summary>Test images (balanced questions).</summary>
    public int TestImages { get; init; } = 2_000;
    /// <summary>Passes over all training examples.</summary>
    public int Epochs { get; init; } = 100;
    /// <summary>Examples per step.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Adam learning rate.</summary>
    public double LearningRate { get; init; } = 1e-4;
    /// <summary>Seed of the weights and the shuffling (the data's seed is <see cref="SortOfClevrOptions.Seed"/>).</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Where to train (fp32 on every device).</summary>
    public ComputeDevice Device { get; init; } = ComputeDevice.Cpu;
    /// <summary>
    /// Time budget of one run's training (from the start of <see cref="SortOfClevrExperiment.Run(SortOfClevrBatches, SortOfClevrBatches, SortOfClevrModelOptions, SortOfClevrTrainingOptions, Action{string}?, CancellationToken)"/>,
    /// model construction included): training stops after the first step that ends past it, then the model is evaluated as
    /// usual. Null (default): all <see cref="Epochs"/>.
    /// </summary>
    public TimeSpan? MaxTrainingTime { get; init; }

    /// <summary>Checks the recipe; messages say what to change.</summary>
    public void Validate()
    {
        if (TrainImages < 1 || TestImages < 1 || Epochs < 1 || BatchSize < 2)
            throw new ArgumentException("TrainImages, TestImages and Epochs must be ≥ 1 and BatchSize ≥ 2 (BatchNorm in the CNN front end).");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be positive and finite.");
        if (MaxTrainingTime is { } limit && limit < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(MaxTrainingTime), limit, "MaxTrainingTime must be ≥ 0 (or null for no limit).");
    }
}

/// <summary>
/// Test accuracy of one trained model: mean over the three families (the number Table 1 reports), per family, and per
/// colour of object A (pooled over families; shows whether rare training colours suffer); and how much training it got.
/// </summary>
/// <param name="Accuracy">Mean of <paramref name="FamilyAccuracy"/>.</param>
/// <param name="FamilyAccuracy">Test accuracy of the non-relational, binary and ternary questions.</param>
/// <param name="ColourAccuracy">Test accuracy of the questions whose object A has each colour, pooled over families.</param>
/// <param name="FinalTrainLoss">Mean Σ_t CE_t over the steps of the last epoch that ran (a partial one when the time budget stopped it).</param>
/// <param name="Steps">Optimizer steps taken.</param>
/// <param name="Epochs">Passes over the training examples: Steps / steps per epoch (below the asked-for epochs when the time budget stopped training).</param>
/// <param name="TrainingTime">Time until training stopped, model construction included.</param>
/// <param name="Elapsed">TrainingTime plus the evaluation.</param>
public sealed record SortOfClevrResult(double Accuracy, double[] FamilyAccuracy, double[] ColourAccuracy, double FinalTrainLoss, int Steps, double Epochs,
    TimeSpan TrainingTime, TimeSpan Elapsed);

/// <summary>Trains and tests one Sort-of-CLEVR model.</summary>
public static class SortOfClevrExperiment
{
    /// <summary>Test images start at this index, so they never coincide with training images.</summary>
    public const int TestFirstIndex = 1_000_000_000;

    /// <summary>Training images 0 … count − 1, with questions drawn under <paramref name="data"/>'s colour law.</summary>
    public static SortOfClevrSplit TrainSplit(SortOfClevrOptions data, int count) => new(new SortOfClevr(data), 0, count);

    /// <summary>Test images from <see cref="TestFirstIndex"/> on, with balanced questions whatever <paramref name="data"/>'s colour law.</summary>
    public static SortOfClevrSplit TestSplit(SortOfClevrOptions data, int count) =>
        new(new SortOfClevr(data with { ColourLaw = ClevrColourLaw.Balanced }), TestFirstIndex, count);

    /// <summary>
    /// Trains a <see cref="SortOfClevrModel"/> on <paramref name="train"/> (loss Σ_t cross-entropy, Adam) and returns its
    /// accuracy on <paramref name="test"/>. fp32 on <see cref="SortOfClevrTrainingOptions.Device"/>; CPU runs with the same arguments are identical.
    /// Copies both splits to the device first; to train several models on the same splits, build the
    /// <see cref="SortOfClevrBatches"/> once and call the other overload.
    /// </summary>
    public static SortOfClevrResult Run(SortOfClevrSplit train, SortOfClevrSplit test, SortOfClevrModelOptions model, SortOfClevrTrainingOptions training,
        Action<string>? log = null, CancellationToken cancellation = default)
    {
        training.Validate();
        var device = Devices.Resolve(training.Device);
        using var trainData = new SortOfClevrBatches(train, device);
        using var testData = new SortOfClevrBatches(test, device);
        return Run(trainData, testData, model, training, log, cancellation);
    }

    /// <summary>
    /// <see cref="Run(SortOfClevrSplit, SortOfClevrSplit, SortOfClevrModelOptions, SortOfClevrTrainingOptions, Action{string}?, CancellationToken)"/>
    /// on examples already on the device: each step gathers its batch there from an epoch's shuffled order (copied to the
    /// device once per epoch), and the loss is summed there and read once per epoch, so a step waits for nothing on the host.
    /// </summary>
    public static SortOfClevrResult Run(SortOfClevrBatches train, SortOfClevrBatches test, SortOfClevrModelOptions model, SortOfClevrTrainingOptions training,
        Action<string>? log = null, CancellationToken cancellation = default)
    {
        training.Validate();
        var device = Devices.Resolve(training.Device);
        if (train.Device.type != device.type || test.Device.type != device.type)
            throw new ArgumentException($"The examples are on {train.Device.type} / {test.Device.type} but training runs on {device.type}: build SortOfClevrBatches on the training device.");
        var clock = Stopwatch.StartNew();
        manual_seed(training.Seed);
        using var network = new SortOfClevrModel(model);
        network.to(device);
        // Adam: FlatAdamW's defaults (β 0.9 / 0.999, ε 1e-8, no weight decay) on one flat buffer, a few kernels per step
        using var optimizer = new FlatAdamW(network, [], bf16: false);
        var shuffle = new SplitMix(training.Seed);
        var order = Enumerable.Range(0, train.Examples).ToArray();
        int batch = Math.Min(training.BatchSize, train.Examples), stepsPerEpoch = train.Examples / batch, steps = 0;
        double epochLoss = double.NaN;
        bool outOfTime = false;
        using var collections = new CollectionGuard();
        for (int epoch = 1; epoch <= training.Epochs && !outOfTime; epoch++)
        {
            double epochStart = clock.Elapsed.TotalSeconds;
            network.train();
            shuffle.Shuffle(order);
            using var epochOrder = train.Indices(order);                                         // E, on the device
            using var lossSum = zeros(1, dtype: ScalarType.Float64, device: device);             // Σ of the float32 step losses, in float64
            int s;
            for (s = 0; s < stepsPerEpoch && !outOfTime; s++, steps++)
            {
                cancellation.ThrowIfCancellationRequested();
                collections.BetweenSteps();
                using var scope = NewDisposeScope();
                var (images, questions, answers) = train.Batch(epochOrder.narrow(0, s * batch, batch));
                var logits = network.call(images, questions);                                     // B×3×10
                var loss = nn.functional.cross_entropy(logits.reshape(-1, SortOfClevr.AnswerClasses), answers.reshape(-1)).Times(SortOfClevrModel.Tasks);   // Σ_t CE_t
                optimizer.ZeroGrad();
                loss.backward();
                optimizer.Step(training.LearningRate, clipNorm: 0);
                lossSum.add_(loss.detach());
                outOfTime = training.MaxTrainingTime is { } limit && clock.Elapsed >= limit;
            }
            epochLoss = lossSum.item<double>() / s;
            double seconds = clock.Elapsed.TotalSeconds;
            log?.Invoke($"  epoch {epoch}/{training.Epochs} loss {epochLoss:F4} ({seconds:F0} s, {s / (seconds - epochStart):F1} steps/s)" +
                        (outOfTime ? $"; out of time after {s} of {stepsPerEpoch} steps" : ""));
        }
        var trainingTime = clock.Elapsed;
        var (accuracy, family, colour) = Evaluate(network, test, batch);
        return new SortOfClevrResult(accuracy, family, colour, epochLoss, steps, (double)steps / stepsPerEpoch, trainingTime, clock.Elapsed);
    }

    /// <summary>
    /// The question-prior baseline: answer every test question with the most frequent training answer of its family and
    /// subtype, never looking at the image. Returns the mean over the families, as <see cref="Evaluate"/> does.
    /// </summary>
    public static double QuestionPrior(SortOfClevrSplit train, SortOfClevrSplit test)
    {
        var counts = new int[3, 3, SortOfClevr.AnswerClasses];
        foreach (var q in train.AllQuestions) counts[(int)q.Family, q.Subtype, q.Answer]++;
        int Majority(int family, int subtype) => Enumerable.Range(0, SortOfClevr.AnswerClasses).MaxBy(a => counts[family, subtype, a]);
        var correct = new double[3];
        for (int e = 0; e < test.Examples; e++)
            for (int f = 0; f < 3; f++)
            {
                var q = test.Question(e, (ClevrFamily)f);
                if (q.Answer == Majority(f, q.Subtype)) correct[f]++;
            }
        return correct.Average() / test.Examples;
    }

    /// <summary>
    /// Accuracy of <paramref name="network"/> on every example of <paramref name="data"/>: mean of the families, per family,
    /// per colour of A. The predictions stay on the device until the last batch; answers and colours are read from the split.
    /// </summary>
    public static (double Mean, double[] Family, double[] Colour) Evaluate(SortOfClevrModel network, SortOfClevrBatches data, int batchSize = 64)
    {
        network.eval();
        var split = data.Split;
        long[] predicted;
        using (no_grad())
        {
            using var all = arange(data.Examples, dtype: ScalarType.Int64, device: data.Device);
            using var predictions = empty([data.Examples, SortOfClevrModel.Tasks], dtype: ScalarType.Int64, device: data.Device);   // E×3
            for (int start = 0; start < data.Examples; start += batchSize)
            {
                using var scope = NewDisposeScope();
                int count = Math.Min(batchSize, data.Examples - start);
                var (images, questions, _) = data.Batch(all.narrow(0, start, count));
                predictions.narrow(0, start, count).copy_(network.call(images, questions).argmax(-1));   // B×3
            }
            using var host = predictions.cpu();
            predicted = host.data<long>().ToArray();
        }
        var correct = new long[3];
        var colourCorrect = new long[SortOfClevr.Colours];
        var colourCount = new long[SortOfClevr.Colours];
        for (int e = 0; e < split.Examples; e++)
            for (int f = 0; f < 3; f++)
            {
                var question = split.Question(e, (ClevrFamily)f);
                bool hit = predicted[e * 3 + f] == question.Answer;
                if (hit) { correct[f]++; colourCorrect[question.ColourA]++; }
                colourCount[question.ColourA]++;
            }
        var family = correct.Select(c => (double)c / split.Examples).ToArray();
        var colour = colourCorrect.Select((c, i) => colourCount[i] == 0 ? double.NaN : (double)c / colourCount[i]).ToArray();
        return (family.Average(), family, colour);
    }
}
