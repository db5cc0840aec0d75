using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Training;

/// <summary>
/// What <see cref="MultiTaskTrainingLoop.Fit"/> needs to go on after a finished epoch (<see cref="TrainingOptions.CheckpointPath"/>),
/// as one safetensors file written atomically: AdamW's flat fp32 masters and moments (<see cref="FlatAdamW"/>: the trainable
/// weights of the network and the loss), the network's buffers (BatchNorm statistics), the keep-best snapshot, and in the
/// metadata the epoch, the step, the history, the per-epoch task losses DWA reads, and the setup the run belongs to, which a
/// resumed run must match. The batch order and augmentation draws are not stored: both are seeded and replayed.
/// </summary>
internal sealed class TrainingCheckpoint
{
    private const string Format = "kemml-training-checkpoint/1";
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>Epochs finished.</summary>
    public required int Epoch { get; init; }
    /// <summary>Training steps taken (the learning-rate schedule's position).</summary>
    public required int Step { get; init; }
    /// <summary>The epoch whose weights the snapshot holds, and its validation loss (null without one).</summary>
    public required int BestEpoch { get; init; }
    public required double? BestLoss { get; init; }
    /// <summary>The snapshot of the best validated epoch's weights, on the training device (null without one).</summary>
    public required Dictionary<string, Tensor>? Best { get; init; }
    public required List<EpochSummary> History { get; init; }
    public required List<IReadOnlyList<double>> EpochTaskMeans { get; init; }

    /// <summary>
    /// The run's setup, compared on resume: a checkpoint only continues the same network (trainable parameters in order and
    /// shape), tasks, data sizes and recipe; anything else would not be the run it was written by.
    /// </summary>
    public static SortedDictionary<string, string> Setup(MultiTaskModel network, DenseDataset train, DenseDataset? validation, TrainingOptions o, int batch, bool bf16)
    {
        var layout = new StringBuilder();
        long count = 0;
        foreach (var (name, p) in network.named_parameters().Where(p => p.parameter.requires_grad))
        {
            layout.Append(name).Append(':').AppendJoin('x', p.shape).Append(';');
            count += p.numel();
        }
        string Number(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        return new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["network"] = $"{count} trainable values, layout {Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(layout.ToString())))[..16]}",
            ["tasks"] = string.Join(", ", network.Options.Tasks.Select(t => $"{t.Name} ({t.Kind}, {t.Classes})")),
            ["training images"] = $"{train.Count} at {train.Height}×{train.Width}",
            ["validation images"] = validation is null ? "none" : $"{validation.Count} at {validation.Height}×{validation.Width}",
            ["Epochs"] = o.Epochs.ToString(CultureInfo.InvariantCulture),
            ["BatchSize"] = batch.ToString(CultureInfo.InvariantCulture),
            ["Seed"] = o.Seed.ToString(CultureInfo.InvariantCulture),
            ["LearningRate"] = Number(o.LearningRate),
            ["WarmupSteps"] = o.WarmupSteps.ToString(CultureInfo.InvariantCulture),
            ["PolyPower"] = Number(o.PolyPower),
            ["LearningRateDecay"] = o.LearningRateDecay.ToString(),
            ["WeightDecay"] = Number(o.WeightDecay),
            ["DecayAllParameters"] = o.DecayAllParameters.ToString(),
            ["GradientClipNorm"] = Number(o.GradientClipNorm),
            ["LossWeighting"] = o.LossWeighting.ToString(),
            ["DwaTemperature"] = Number(o.DwaTemperature),
            ["bf16"] = bf16.ToString(),
            ["Augmentation"] = Describe(o.Augmentation),
            ["CrossTaskContrast"] = o.CrossTaskContrast?.ToString() ?? "off",
            ["validation schedule"] = $"every {o.ValidateEveryEpochs}, last {o.ValidateLastEpochs?.ToString(CultureInfo.InvariantCulture) ?? "-"}, keep best {o.KeepBest}",
        };
    }

    private static string Describe(AugmentationOptions a) => FormattableString.Invariant(
        $"flip {a.Flip}, scales {(a.Scales is { } scales ? "[" + string.Join(", ", scales) + "]" : $"{a.MinScale}–{a.MaxScale}")}, rotation {a.MaxRotationDegrees}°");

    /// <summary>Writes the state after <paramref name="epoch"/> to <paramref name="path"/> atomically (a reader never sees half a file).</summary>
    public static void Save(string path, IReadOnlyDictionary<string, string> setup, int epoch, int step, FlatAdamW optimizer, nn.Module network,
        CrossTaskContrast? contrast, Dictionary<string, Tensor>? best, int bestEpoch, double? bestLoss, IReadOnlyList<EpochSummary> history, IReadOnlyList<IReadOnlyList<double>> epochTaskMeans)
    {
        var tensors = new List<SafeTensor>();
        foreach (var (name, values) in optimizer.StateTensors()) tensors.Add(ToSafe("optimizer." + name, values));
        foreach (var (name, buffer) in network.named_buffers())
            if (Supported(buffer.dtype)) tensors.Add(ToSafe("buffer." + name, buffer));
        foreach (var (name, frozen) in Frozen(network)) tensors.Add(ToSafe("frozen." + name, frozen));
        if (contrast is not null)
            foreach (var (name, buffer) in contrast.named_buffers()) tensors.Add(ToSafe("contrast." + name, buffer));
        if (best is not null)
            foreach (var (name, values) in best) tensors.Add(ToSafe("best." + name, values));
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["epoch"] = epoch.ToString(CultureInfo.InvariantCulture),
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["optimizer steps"] = optimizer.Steps.ToString(CultureInfo.InvariantCulture),
            ["best epoch"] = bestEpoch.ToString(CultureInfo.InvariantCulture),
            ["best loss"] = bestLoss is double b ? b.ToString("R", CultureInfo.InvariantCulture) : "",
            ["history"] = JsonSerializer.Serialize(history, Json),
            ["epoch task means"] = JsonSerializer.Serialize(epochTaskMeans, Json),
        };
        foreach (var (key, value) in setup) metadata["setup." + key] = value;
        SafeTensors.Write(path, tensors, metadata);
    }

    /// <summary>
    /// Reads <paramref name="path"/>, checks it belongs to <paramref name="setup"/>, and puts its optimiser state and buffers into
    /// <paramref name="optimizer"/> and <paramref name="network"/>. Errors name the file and, for another run's checkpoint, what differs.
    /// </summary>
    public static TrainingCheckpoint Load(string path, IReadOnlyDictionary<string, string> setup, FlatAdamW optimizer, nn.Module network,
        CrossTaskContrast? contrast, Device device)
    {
        var (tensors, metadata) = SafeTensors.Parse(File.ReadAllBytes(path), path);
        if (!metadata.TryGetValue("format", out var format) || format != Format)
            throw new InvalidDataException($"'{path}' is not a KemMl training checkpoint ({Format}); delete it or set TrainingOptions.CheckpointPath to another file.");
        var differences = setup
            .Select(kv => (kv.Key, Saved: metadata.TryGetValue("setup." + kv.Key, out var saved) ? saved : "(absent)", Now: kv.Value))
            .Where(d => d.Saved != d.Now)
            .Select(d => $"{d.Key}: {d.Saved} there, {d.Now} now")
            .ToList();
        if (differences.Count > 0)
            throw new InvalidOperationException($"The checkpoint '{path}' belongs to another training run ({string.Join("; ", differences)}). " +
                "Resume with the same network, data sizes and TrainingOptions, or delete the file (or choose another CheckpointPath) to start afresh.");

        using var noGrad = no_grad();
        using (var scope = NewDisposeScope())
        {
            var state = tensors.Where(kv => kv.Key.StartsWith("optimizer.", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key["optimizer.".Length..], kv => FromSafe(kv.Value, device));
            optimizer.LoadState(state, long.Parse(metadata["optimizer steps"], CultureInfo.InvariantCulture));
            var fixedState = network.named_buffers().Where(b => Supported(b.buffer.dtype)).Select(b => ("buffer." + b.name, b.buffer))
                .Concat(Frozen(network).Select(f => ("frozen." + f.Name, f.Values)))
                .Concat(contrast?.named_buffers().Select(b => ("contrast." + b.name, b.buffer)) ?? []);
            foreach (var (key, target) in fixedState)
            {
                var saved = tensors.TryGetValue(key, out var found) ? found : throw new InvalidDataException($"'{path}' has no '{key}'.");
                var values = FromSafe(saved, device);
                if (!values.shape.SequenceEqual(target.shape))
                    throw new InvalidDataException($"'{path}': '{key}' is [{string.Join("×", values.shape)}], the network's [{string.Join("×", target.shape)}].");
                target.copy_(values);
            }
        }
        var bestTensors = tensors.Where(kv => kv.Key.StartsWith("best.", StringComparison.Ordinal)).ToList();
        var best = bestTensors.Count == 0 ? null
            : bestTensors.ToDictionary(kv => kv.Key["best.".Length..], kv => FromSafe(kv.Value, device).DetachFromDisposeScope());
        return new TrainingCheckpoint
        {
            Epoch = int.Parse(metadata["epoch"], CultureInfo.InvariantCulture),
            Step = int.Parse(metadata["step"], CultureInfo.InvariantCulture),
            BestEpoch = int.Parse(metadata["best epoch"], CultureInfo.InvariantCulture),
            BestLoss = metadata["best loss"] is { Length: > 0 } loss ? double.Parse(loss, CultureInfo.InvariantCulture) : null,
            Best = best,
            History = JsonSerializer.Deserialize<List<EpochSummary>>(metadata["history"], Json) ?? [],
            EpochTaskMeans = (JsonSerializer.Deserialize<List<double[]>>(metadata["epoch task means"], Json) ?? []).Select(m => (IReadOnlyList<double>)m).ToList(),
        };
    }

    /// <summary>Parameters that are not trained (a frozen backbone): neither in the optimiser's state nor buffers, so kept apart.</summary>
    private static IEnumerable<(string Name, Tensor Values)> Frozen(nn.Module network) =>
        network.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => (p.name, (Tensor)p.parameter));

    private static bool Supported(ScalarType type) => type is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float64 or ScalarType.Int64;

    private static SafeTensor ToSafe(string name, Tensor values)
    {
        using var host = values.detach().cpu().contiguous();
        var type = host.dtype switch
        {
            ScalarType.Float32 => SafeTensorDType.F32,
            ScalarType.BFloat16 => SafeTensorDType.BF16,
            ScalarType.Float16 => SafeTensorDType.F16,
            ScalarType.Float64 => SafeTensorDType.F64,
            ScalarType.Int64 => SafeTensorDType.I64,
            var other => throw new NotSupportedException($"Tensor '{name}' is {other}; a checkpoint holds float and int64 tensors."),
        };
        return new SafeTensor(name, type, host.shape, host.bytes.ToArray());
    }

    private static Tensor FromSafe(SafeTensor saved, Device device)
    {
        var type = saved.DType switch
        {
            SafeTensorDType.F32 => ScalarType.Float32,
            SafeTensorDType.BF16 => ScalarType.BFloat16,
            SafeTensorDType.F16 => ScalarType.Float16,
            SafeTensorDType.F64 => ScalarType.Float64,
            _ => ScalarType.Int64,
        };
        var host = empty(saved.Shape, type);
        saved.Data.CopyTo(host.bytes);
        if (device.type == DeviceType.CPU) return host;
        using (host) return host.to(device);
    }
}
