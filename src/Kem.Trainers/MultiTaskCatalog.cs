using Kem.Trainers;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML;

/// <summary>Entry point: <c>mlContext.MultiTask()</c>.</summary>
public static class MultiTaskCatalogExtensions
{
    /// <summary>Multi-task dense prediction: trainers, label transforms and evaluation.</summary>
    public static MultiTaskCatalog MultiTask(this MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return new MultiTaskCatalog(mlContext);
    }
}

/// <summary>The multi-task catalog: <see cref="Trainers"/>, <see cref="Transforms"/>, <see cref="Data"/> and <see cref="Evaluate"/>.</summary>
public sealed class MultiTaskCatalog
{
    internal MLContext Context { get; }

    internal MultiTaskCatalog(MLContext context)
    {
        Context = context;
        Trainers = new MultiTaskTrainers(context);
        Transforms = new MultiTaskTransforms(context);
        Model = new MultiTaskModelOperations(context);
        Data = new MultiTaskDataCatalog();
    }

    /// <summary>Trainers of multi-task networks.</summary>
    public MultiTaskTrainers Trainers { get; }

    /// <summary>
    /// Generated indoor scenes as an IDataView with an Image column and one label column per task kind
    /// (see <see cref="SceneData"/>); deterministic in (<paramref name="seed"/>, row index).
    /// </summary>
    public IDataView GenerateScenes(int count, int height = 128, int width = 128, long seed = 1, int firstIndex = 0)
        => SceneData.Generate(Context, count, height, width, seed, firstIndex);

    /// <summary>Transforms that load dense labels.</summary>
    public MultiTaskTransforms Transforms { get; }

    /// <summary>Model zips: atomic save, load with clear errors, and the TorchSharp network rebuilt from a zip.</summary>
    public MultiTaskModelOperations Model { get; }
    /// <summary>Dataset readers: NYUD-v2 and PASCAL-Context multi-task layouts as IDataViews.</summary>
    public MultiTaskDataCatalog Data { get; }

    /// <summary>
    /// Per-task metrics of scored <paramref name="data"/> (the output of a fitted transformer, with its label columns),
    /// and Δm against <paramref name="singleTaskReference"/> when given (MODEL-SPEC §9). <paramref name="metricOptions"/> sets the
    /// evaluation, e.g. <c>new DenseMetricOptions { DepthEvalMaxMetres = DenseMetricOptions.MtformerDepthEvalMaxMetres }</c> for
    /// MTFormer's NYUD depth range (default: no cap).
    /// </summary>
    public MultiTaskMetrics Evaluate(IDataView data, IEnumerable<TaskColumn> tasks, IReadOnlyList<Microsoft.ML.Kem.Tasks.TaskMetrics>? singleTaskReference = null,
        Microsoft.ML.Kem.Tasks.DenseMetricOptions? metricOptions = null)
        => MultiTaskEvaluator.Evaluate(data, tasks.ToArray(), singleTaskReference, metricOptions);

    /// <summary>
    /// Metrics of the trivial constant predictor (majority class, mean depth, mean normal, positive rate) fitted on
    /// <paramref name="trainingData"/> and measured on <paramref name="testData"/>: the floor a trained model must clear.
    /// Both views need the label columns and the image column (to know the image size). <paramref name="metricOptions"/>: as in <see cref="Evaluate"/>.
    /// </summary>
    public MultiTaskMetrics EvaluateTrivialBaseline(IDataView trainingData, IDataView testData, IEnumerable<TaskColumn> tasks, string imageColumnName = "Image",
        Microsoft.ML.Kem.Tasks.DenseMetricOptions? metricOptions = null)
    {
        var columns = tasks.ToArray();
        var (height, width) = DenseDataReader.ImageSize(trainingData.Schema, imageColumnName);
        var train = DenseDataReader.Read(trainingData, imageColumnName, columns, height, width, "training data");
        var test = DenseDataReader.Read(testData, imageColumnName, columns, height, width, "test data");
        return new MultiTaskMetrics(Microsoft.ML.Kem.Training.TrivialBaseline.Evaluate(train, test, metricOptions), null);
    }
}

/// <summary>Trainers of multi-task networks.</summary>
public sealed class MultiTaskTrainers
{
    private readonly IHostEnvironment env;

    internal MultiTaskTrainers(IHostEnvironment env) => this.env = env;

    /// <summary>The KEM multi-task trainer with full options.</summary>
    public MultiTaskKemTrainer Kem(MultiTaskKemTrainer.Options options) => new(env, options);

    /// <summary>
    /// The KEM multi-task trainer with the common settings: the image column (3×H×W from ExtractPixels), the tasks,
    /// the interaction module (default sKEM), epochs and device.
    /// </summary>
    public MultiTaskKemTrainer Kem(
        IEnumerable<TaskColumn> tasks, string imageColumnName = "Image", InteractionKind interaction = InteractionKind.StableKem,
        int epochs = 10, ComputeDevice device = ComputeDevice.Auto)
        => new(env, new MultiTaskKemTrainer.Options
        {
            ImageColumnName = imageColumnName,
            Tasks = tasks.ToList(),
            Interaction = new InteractionOptions { Kind = interaction },
            Training = new TrainingOptions { Epochs = epochs, Device = device },
        });
}
