using System.Diagnostics;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Training;

/// <summary>
/// The training loop (MODEL-SPEC §11): AdamW, warm-up + polynomial decay (per epoch or per iteration), gradient clipping,
/// bf16 on CUDA, one dispose scope per step (memory stays flat), validation (every N or the last N epochs) with keep-best on the
/// validation loss, cancellation and progress.
/// </summary>
public static class MultiTaskTrainingLoop
{
    /// <summary>
    /// Trains <paramref name="network"/> in place on <paramref name="train"/>; validates on <paramref name="validation"/>
    /// when given. Progress goes to <paramref name="progress"/> and, as text, to <paramref name="log"/>.
    /// Cancelling <paramref name="cancellation"/> stops between steps with <see cref="OperationCanceledException"/>.
    /// The network is left on the training device, in fp32 and eval mode.
    /// </summary>
    public static TrainingResult Fit(
        MultiTaskModel network, DenseDataset train, DenseDataset? validation, TrainingOptions options,
        IProgress<TrainingProgress>? progress = null, Action<string>? log = null, CancellationToken cancellation = default)
    {
        options.Validate();
        var tasks = network.Options.Tasks;
        CheckData(network.Options, train, "training data");
        if (validation is not null) CheckData(network.Options, validation, "validation data");
        if (train.Count < 2) throw new ArgumentException($"The training data holds {train.Count} image(s); at least 2 are needed.");

        var device = options.ResolveDevice();
        bool bf16 = options.MixedPrecision && (device.type == DeviceType.CUDA || options.MixedPrecisionOnCpu);
        torch.manual_seed(options.Seed);
        int batch = Math.Min(options.BatchSize, train.Count);
        var fix = MemoryFix(options, network.Options, batch, bf16, device);
        using var lossModule = new MultiTaskLoss("loss", tasks, options.LossWeighting);
        using var contrast = options.CrossTaskContrast is { } contrastOptions   // MODEL-SPEC §7, optional: MTFormer's contrastive loss
            ? new CrossTaskContrast("contrast", tasks.Count, network.Options.Width, train.Count, contrastOptions) : null;
        TrainingStep? made = null;
        try
        {
            network.to(device);
            lossModule.to(device);
            contrast?.to(device);
            // One step = forward, losses, backward, clipping and AdamW on flat fp32 masters, with no host sync (TrainingStep).
            made = new TrainingStep(network, lossModule, options, device, contrast);
        }
        catch (Exception e) when (DeviceMemory.IsExhausted(e))
        {
            throw DeviceMemory.Exhausted(e, device, $"placing the network ({network.TrainableParameterCount:N0} trainable parameters) and AdamW's state on it", fix);
        }
        using var trainingStep = made;

        int stepsPerEpoch = train.Count / batch; // drop the incomplete last batch (BatchNorm needs ≥ 2 images)
        int totalSteps = stepsPerEpoch * options.Epochs;
        int warmup = Math.Min(options.WarmupSteps, totalSteps / 4);
        var schedule = new LearningRateSchedule(options.LearningRate, totalSteps, warmup, options.PolyPower, options.LearningRateDecay, stepsPerEpoch);
        log?.Invoke($"Training on {device.type.ToString().ToLowerInvariant()}{(bf16 ? " (bf16, fp32 master weights)" : " (fp32)")}: " +
                    $"{train.Count} images, batch {batch}, {stepsPerEpoch} steps/epoch × {options.Epochs} epochs, warm-up {warmup}, " +
                    $"{network.TrainableParameterCount:N0} trainable parameters.");

        var shuffle = new SplitMix(options.Seed);
        var order = Enumerable.Range(0, train.Count).ToArray();
        var history = new List<EpochSummary>();
        Dictionary<string, Tensor>? best = null;
        double? bestLoss = null;
        int bestEpoch = options.Epochs, step = 0, startEpoch = 0;
        var epochTaskMeans = new List<IReadOnlyList<double>>(); // L̄_t of each finished epoch (EpochSummary, DWA's ratios)

        // A checkpoint of this run (TrainingOptions.CheckpointPath): go on after its epoch.
        var setup = options.CheckpointPath is null ? null : TrainingCheckpoint.Setup(network, train, validation, options, batch, bf16);
        if (options.CheckpointPath is { } checkpointPath)
        {
            if (Path.GetDirectoryName(Path.GetFullPath(checkpointPath)) is { } folder) Directory.CreateDirectory(folder);
            if (File.Exists(checkpointPath))
            {
                var resumed = TrainingCheckpoint.Load(checkpointPath, setup!, trainingStep.Optimizer, network, contrast, device);
                (startEpoch, step, best, bestLoss, bestEpoch) = (resumed.Epoch, resumed.Step, resumed.Best, resumed.BestLoss, resumed.BestEpoch);
                history.AddRange(resumed.History);
                epochTaskMeans.AddRange(resumed.EpochTaskMeans);
                log?.Invoke($"Resuming after epoch {startEpoch} of {options.Epochs} (step {step}) from the checkpoint '{checkpointPath}'.");
            }
        }
        var clock = Stopwatch.StartNew();
        var window = Stopwatch.StartNew();
        int windowImages = 0;
        using var windowTaskLoss = torch.zeros(tasks.Count, device: device);
        using var windowLoss = torch.zeros(1, device: device);
        int windowSteps = 0;
        var taskNames = tasks.Select(t => t.Name).ToArray();

        // Every epoch's batches up front (the same shuffles, in the same order), so that the prefetcher prepares them
        // ahead of the GPU across epoch ends too (pinned host tensors, non-blocking copies on CUDA).
        var epochBatches = new List<int[]>(stepsPerEpoch * options.Epochs);
        for (int epoch = 1; epoch <= options.Epochs; epoch++)
        {
            shuffle.Shuffle(order);
            for (int s = 0; s < stepsPerEpoch; s++) epochBatches.Add(order.AsSpan(s * batch, batch).ToArray());
        }
        using var batches = new BatchPrefetcher(train, epochBatches.Skip(startEpoch * stepsPerEpoch).ToList(), device);
        // The contrastive loss indexes its memory bank by image: every batch's indices, copied to the device once (a view per step).
        using var batchIndices = contrast is null ? null
            : torch.tensor(epochBatches.SelectMany(b => b.Select(i => (long)i)).ToArray(), [epochBatches.Count, batch]).to(device);
        var augment = new BatchAugmenter(options.Augmentation, network.Options, options.Seed); // MODEL-SPEC §11: training batches only
        augment.Skip(startEpoch * stepsPerEpoch, batch);                                       // a resumed run draws on from where it stopped
        using var collections = new CollectionGuard();   // no collection by another thread mid-step (see CollectionGuard)

        for (int epoch = startEpoch + 1; epoch <= options.Epochs; epoch++)
        {
            network.train();
            double epochLoss = 0;
            var epochTaskSums = new double[tasks.Count];          // summed from the reports' reads: no extra host sync
            Dictionary<string, double>? dwaWeights = null;
            if (options.LossWeighting == LossWeighting.Dwa)       // MODEL-SPEC §8: λ_t(e) from L̄_t(e−1)/L̄_t(e−2), once per epoch
            {
                var lambdas = DynamicWeightAverage.Weights(taskNames, epochTaskMeans, options.DwaTemperature);
                lossModule.SetDwaWeights(lambdas);
                dwaWeights = taskNames.Zip(lambdas).ToDictionary(x => x.First, x => x.Second);
            }
            for (int s = 0; s < stepsPerEpoch; s++, step++)
            {
                cancellation.ThrowIfCancellationRequested();
                collections.BetweenSteps();
                using var scope = torch.NewDisposeScope();
                double lr = schedule.At(step);

                Tensor loss;
                Tensor[] taskLosses;
                try
                {
                    var (images, labels) = augment.Apply(batches.Next());
                    if (contrast is null) (loss, taskLosses) = trainingStep.Run(images, labels, lr);
                    else
                    {
                        // negatives drawn from (seed, step) alone, so that a resumed run draws what the uninterrupted one did
                        using var negatives = new Generator(unchecked((ulong)options.Seed * 0x9E3779B97F4A7C15UL + (ulong)step), device);
                        (loss, taskLosses) = trainingStep.Run(images, labels, lr, batchIndices![step], negatives);
                    }
                }
                catch (Exception e) when (DeviceMemory.IsExhausted(e))
                {
                    throw DeviceMemory.Exhausted(e, device, $"running training step {step + 1} of {totalSteps} (epoch {epoch}, batch {batch})", fix);
                }

                using (torch.no_grad())
                {
                    windowTaskLoss.add_(torch.stack(taskLosses).detach());
                    windowLoss.add_(loss.detach().reshape(1));
                }
                windowSteps++;
                windowImages += batch;

                bool last = s == stepsPerEpoch - 1;
                if ((step + 1) % options.ReportEverySteps == 0 || last)
                {
                    var perTask = windowTaskLoss.cpu().data<float>().ToArray(); // one host sync per report
                    double meanLoss = windowLoss.cpu().item<float>() / windowSteps;
                    if (!double.IsFinite(meanLoss))
                        throw new InvalidOperationException(
                            $"The training loss became {meanLoss} at epoch {epoch}, step {step + 1} " +
                            $"(task losses: {string.Join(", ", tasks.Select((t, i) => $"{t.Name} {perTask[i] / windowSteps}"))}). " +
                            "Lower LearningRate, keep GradientClipNorm on, or check the labels of that task.");
                    epochLoss += meanLoss * windowSteps;
                    for (int t = 0; t < perTask.Length; t++) epochTaskSums[t] += perTask[t];
                    double rate = windowImages / Math.Max(window.Elapsed.TotalSeconds, 1e-9);
                    var eta = TimeSpan.FromSeconds((totalSteps - step - 1) * batch / Math.Max(rate, 1e-9));
                    Report(progress, log, new TrainingProgress("train", epoch, options.Epochs, step + 1, totalSteps,
                        tasks.Select((t, i) => (t.Name, perTask[i] / windowSteps)).ToDictionary(x => x.Name, x => (double)x.Item2),
                        meanLoss, lr, rate, eta, dwaWeights));
                    windowTaskLoss.zero_(); windowLoss.zero_();
                    windowSteps = 0; windowImages = 0; window.Restart();
                }
            }

            double? validationLoss = null;
            IReadOnlyDictionary<string, double>? validationTaskLosses = null;
            if (validation is not null && options.ValidatesAfter(epoch))
            {
                try
                {
                    (validationLoss, validationTaskLosses) = Validate(network, validation, batch, device, bf16);
                }
                catch (Exception e) when (DeviceMemory.IsExhausted(e))
                {
                    throw DeviceMemory.Exhausted(e, device, $"validating after epoch {epoch} (batch {batch})", fix);
                }
                Report(progress, log, new TrainingProgress("validate", epoch, options.Epochs, step, totalSteps,
                    validationTaskLosses, validationLoss.Value, schedule.At(Math.Max(step - 1, 0)), 0, TimeSpan.Zero));
                if (options.KeepBest && (bestLoss is null || validationLoss < bestLoss))
                {
                    DisposeAll(best);
                    best = Snapshot(network, trainingStep);
                    (bestLoss, bestEpoch) = (validationLoss, epoch);
                }
            }
            var trainTaskMeans = epochTaskSums.Select(sum => sum / stepsPerEpoch).ToArray();
            epochTaskMeans.Add(trainTaskMeans);
            history.Add(new EpochSummary(epoch, epochLoss / stepsPerEpoch, validationLoss, validationTaskLosses,
                taskNames.Zip(trainTaskMeans).ToDictionary(x => x.First, x => x.Second), dwaWeights));
            if (options.CheckpointPath is { } path && (epoch % options.CheckpointEveryEpochs == 0 || epoch == options.Epochs))
                TrainingCheckpoint.Save(path, setup!, epoch, step, trainingStep.Optimizer, network, contrast, best, bestEpoch, bestLoss, history, epochTaskMeans);
        }

        trainingStep.RestoreFp32(); // bf16: the fp32 masters, not bf16-rounded weights
        if (best is not null)
        {
            if (bestEpoch != options.Epochs) log?.Invoke($"Restoring the weights of epoch {bestEpoch} (best validation loss {bestLoss:F4}).");
            using (torch.no_grad())
                foreach (var (name, tensor) in network.state_dict())
                    tensor.copy_(best[name]);
            DisposeAll(best);
        }
        network.eval();
        return new TrainingResult(device.type.ToString().ToLowerInvariant(), step, bestEpoch, bestLoss, history, clock.Elapsed)
        {
            DataWait = batches.Waited, ResumedAfterEpoch = startEpoch,
        };
    }

    /// <summary>Mean Σ_t w_t L_t and per-task losses over <paramref name="data"/>, in eval mode without gradients.</summary>
    public static (double Loss, IReadOnlyDictionary<string, double> TaskLosses) Validate(
        MultiTaskModel network, DenseDataset data, int batchSize, Device device, bool bf16 = false)
    {
        var tasks = network.Options.Tasks;
        network.eval();
        var sums = new double[tasks.Count];
        int batches = 0;
        var all = Enumerable.Range(0, data.Count).ToArray();
        using var collections = new CollectionGuard();
        using (torch.no_grad())
            for (int start = 0; start < data.Count; start += batchSize, batches++)
            {
                collections.BetweenSteps();
                using var scope = torch.NewDisposeScope();
                var (images, labels) = data.Batch(all.AsSpan(start, Math.Min(batchSize, data.Count - start)), device);
                var outputs = network.forward(bf16 ? images.to(ScalarType.BFloat16) : images);
                for (int t = 0; t < tasks.Count; t++)
                    sums[t] += TaskLoss.Compute(tasks[t], outputs[t].to(ScalarType.Float32), labels[t]).cpu().item<float>();
            }
        var perTask = tasks.Select((t, i) => (t.Name, sums[i] / batches)).ToDictionary(x => x.Name, x => x.Item2);
        return (tasks.Select((t, i) => t.LossWeight * sums[i] / batches).Sum(), perTask);
    }

    /// <summary>What to change when training runs out of memory, for <see cref="DeviceMemory.Exhausted"/>.</summary>
    private static string MemoryFix(TrainingOptions options, MultiTaskNetworkOptions o, int batch, bool bf16, Device device) =>
        $"Lower TrainingOptions.BatchSize (now {batch}) or the image size (now {o.ImageHeight}×{o.ImageWidth}), or use a smaller network " +
        "(a smaller preset, Width or depths)" +
        (device.type == DeviceType.CUDA && !bf16 ? "; turn TrainingOptions.MixedPrecision on (bf16 activations)" : "") +
        (device.type == DeviceType.CUDA ? "; or train on the CPU (TrainingOptions.Device = Cpu)" : "") +
        ". The network in memory is left partly trained (build a new one to train again); " +
        (options.CheckpointPath is { } path
            ? $"the checkpoint '{path}' keeps the last finished epoch, which only the same settings can resume (delete it to start afresh with others)."
            : "nothing on disk was changed.");

    private static void CheckData(MultiTaskNetworkOptions o, DenseDataset data, string what)
    {
        if (data.Height != o.ImageHeight || data.Width != o.ImageWidth)
            throw new ArgumentException($"The {what} is {data.Height}×{data.Width}, the network expects {o.ImageHeight}×{o.ImageWidth}: resize the images and labels (ResizeImages) or change ImageHeight/ImageWidth.");
        if (!data.Tasks.Select(t => t.Name).SequenceEqual(o.Tasks.Select(t => t.Name)))
            throw new ArgumentException($"The {what} has tasks [{string.Join(", ", data.Tasks.Select(t => t.Name))}], the network [{string.Join(", ", o.Tasks.Select(t => t.Name))}].");
    }

    private static void Report(IProgress<TrainingProgress>? progress, Action<string>? log, TrainingProgress p)
    {
        progress?.Report(p);
        log?.Invoke(p.ToString());
    }

    /// <summary>A detached copy of the weights; under bf16 the trainable ones come from the fp32 masters.</summary>
    private static Dictionary<string, Tensor> Snapshot(nn.Module network, TrainingStep step)
    {
        using var _ = torch.no_grad();
        var copy = network.state_dict().ToDictionary(kv => kv.Key, kv => (kv.Value.is_floating_point() ? kv.Value.detach().to(ScalarType.Float32) : kv.Value.detach()).clone().DetachFromDisposeScope());
        if (step.Bf16)
            foreach (var (name, master) in step.Optimizer.NamedMasters(network))
            {
                copy[name].Dispose();
                copy[name] = master.detach().clone().DetachFromDisposeScope();
            }
        return copy;
    }

    private static void DisposeAll(Dictionary<string, Tensor>? tensors)
    {
        if (tensors is null) return;
        foreach (var t in tensors.Values) t.Dispose();
    }
}

/// <summary>SplitMix64: a small, fixed, deterministic generator (System.Random's algorithm may change between runtimes).</summary>
public sealed class SplitMix(long seed)
{
    private ulong state = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + 0x632BE59BD9B4E019UL);

    /// <summary>Next 64 random bits.</summary>
    public ulong Next()
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform integer in [0, <paramref name="bound"/>).</summary>
    public int NextInt(int bound) => (int)(Next() % (ulong)bound);

    /// <summary>Fisher–Yates shuffle in place.</summary>
    public void Shuffle(int[] items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
