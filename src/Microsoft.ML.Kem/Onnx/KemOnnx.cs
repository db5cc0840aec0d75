using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Google.Protobuf;
using Microsoft.ML.Kem.Data;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx.Proto;
using Microsoft.ML.Kem.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Onnx;

/// <summary>How an exported graph takes its images.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>Name of the graph input (the ML.NET image column): "Image" by default.</summary>
    public string InputName { get; init; } = "Image";

    /// <summary>
    /// true (default, standalone files): input N×3×H×W with a symbolic batch "N"; outputs N×C_t×H×W and N×H×W.
    /// false (the ML.NET model zip): one image 3×H×W → C_t×H×W and H×W, which ML.NET's OnnxTransformer turns into
    /// exactly the column types of the TorchSharp transformer.
    /// </summary>
    public bool Batched { get; init; } = true;
}

/// <summary>What a KemMl ONNX file says about itself (its metadata).</summary>
/// <param name="Network">The network's options, tasks included.</param>
/// <param name="InputName">The graph input's name.</param>
/// <param name="Batched">Whether the graph takes N×3×H×W (true) or one 3×H×W image (false).</param>
/// <param name="Opset">The version of the standard ONNX operator set the graph imports.</param>
public sealed record KemOnnxDescription(MultiTaskNetworkOptions Network, string InputName, bool Batched, long Opset);

/// <summary>
/// Exports a <see cref="MultiTaskModel"/> to ONNX (opset <see cref="Opset"/>) and rebuilds one from such a file: every
/// <see cref="NetworkArchitecture"/> (the shared-encoder <see cref="MultiTaskNetwork"/> with any backbone,
/// <see cref="SequentialCrossAttentionNetwork"/>, <see cref="ComputationSharingNetwork"/>).
/// The graph computes exactly what the network's forward plus <see cref="TaskOutputs"/> compute, in eval mode
/// (BatchNorm running statistics; no training-only outputs such as deep supervision): input raw pixels (normalisation inside), outputs per task "&lt;Task&gt;Score"
/// (float, C_t×H×W) and for classification tasks "&lt;Task&gt;PredictedLabel" (int32, H×W).
/// Every state_dict entry the graph reads is an initializer named by its key, the others (BatchNorm counters,
/// training-only heads) are kept in the metadata, and the metadata carries the network's options as JSON, so
/// <see cref="ReadNetwork"/> restores the network bit for bit.
/// </summary>
public static class KemOnnx
{
    /// <summary>The ONNX operator set the graphs use.</summary>
    public const int Opset = 17;
    /// <summary>The ONNX IR version written (8 goes with opset 17).</summary>
    public const int IrVersion = 8;
    /// <summary>Metadata key marking a KemMl file, with its format version.</summary>
    public const string FormatKey = "kemml.format";
    /// <summary>Metadata key of the <see cref="MultiTaskNetworkOptions"/> JSON.</summary>
    public const string NetworkKey = "kemml.network";
    /// <summary>Metadata key of the input's name.</summary>
    public const string InputKey = "kemml.input";
    /// <summary>Metadata key of the layout: "batched" or "single".</summary>
    public const string LayoutKey = "kemml.layout";
    /// <summary>Metadata key of the state_dict entries the graph does not read (BatchNorm counters, deep-supervision heads), as JSON.</summary>
    public const string StateKey = "kemml.state";
    private const string FormatVersion = "1";

    private static readonly JsonSerializerOptions Json = new()
    {
        Converters = { new JsonStringEnumConverter() }, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Name of task <paramref name="task"/>'s score output (and ML.NET column): "&lt;Task&gt;Score".</summary>
    public static string ScoreOutput(TaskSpec task) => task.Name + "Score";

    /// <summary>Name of a classification task's label output (and ML.NET column): "&lt;Task&gt;PredictedLabel".</summary>
    public static string PredictedLabelOutput(TaskSpec task) => task.Name + "PredictedLabel";

    /// <summary>The ONNX model bytes of <paramref name="network"/> (its weights as they are now; any device).</summary>
    public static byte[] Export(MultiTaskModel network, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        options ??= new OnnxExportOptions();
        if (string.IsNullOrWhiteSpace(options.InputName)) throw new ArgumentException("OnnxExportOptions.InputName must not be empty.", nameof(options));
        var o = network.Options;

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var weights = network.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu(), StringComparer.Ordinal);
        var g = new OnnxGraph(weights);
        var images = options.Batched
            ? g.Input(options.InputName, null, 3, o.ImageHeight, o.ImageWidth)
            : g.Unsqueeze(g.Input(options.InputName, 3, o.ImageHeight, o.ImageWidth), 0);       // 3×H×W → 1×3×H×W
        var raw = NetworkGraph.Network(g, o, images);
        for (int t = 0; t < raw.Length; t++)
        {
            var task = o.Tasks[t];
            var score = NetworkGraph.Score(g, task, raw[t]);
            Output(g, score, ScoreOutput(task), TensorProto.Types.DataType.Float, options.Batched, task.Channels, o.ImageHeight, o.ImageWidth);
            if (task.IsClassification)
                Output(g, NetworkGraph.PredictedLabel(g, raw[t]), PredictedLabelOutput(task), TensorProto.Types.DataType.Int32, options.Batched, o.ImageHeight, o.ImageWidth);
        }

        var model = new ModelProto
        {
            IrVersion = IrVersion, ProducerName = "KemMl", ProducerVersion = typeof(KemOnnx).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = g.Proto, DocString = "KemMl multi-task dense prediction network (MODEL-SPEC §1).",
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        model.MetadataProps.Add(new StringStringEntryProto { Key = FormatKey, Value = FormatVersion });
        model.MetadataProps.Add(new StringStringEntryProto { Key = NetworkKey, Value = JsonSerializer.Serialize(o, Json) });
        model.MetadataProps.Add(new StringStringEntryProto { Key = InputKey, Value = options.InputName });
        model.MetadataProps.Add(new StringStringEntryProto { Key = LayoutKey, Value = options.Batched ? "batched" : "single" });
        model.MetadataProps.Add(new StringStringEntryProto { Key = StateKey, Value = JsonSerializer.Serialize(g.UnreadWeights().ToDictionary(kv => kv.Key, kv => StoredTensor.From(kv.Value)), Json) });
        return model.ToByteArray();
    }

    private static void Output(OnnxGraph g, string value, string name, TensorProto.Types.DataType type, bool batched, params long[] dims)
    {
        if (batched) g.Output(value, name, type, new long?[] { null }.Concat(dims.Select(d => (long?)d)).ToArray());
        else g.Output(g.Squeeze(value, 0), name, type, dims.Select(d => (long?)d).ToArray());
    }

    /// <summary>Writes <see cref="Export"/>'s bytes to <paramref name="path"/> atomically (temporary file, then rename).</summary>
    public static void Save(MultiTaskModel network, string path, OnnxExportOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        AtomicFile.WriteAllBytes(path, Export(network, options));
    }

    /// <summary>True when <paramref name="bytes"/> parse as an ONNX model that KemMl wrote.</summary>
    public static bool IsKemModel(ReadOnlySpan<byte> bytes)
    {
        try { return Parse(bytes).MetadataProps.Any(p => p.Key == FormatKey); }
        catch (InvalidProtocolBufferException) { return false; }
    }

    /// <summary>Reads the metadata of a KemMl ONNX model; <paramref name="source"/> names the file in errors.</summary>
    public static KemOnnxDescription Describe(ReadOnlySpan<byte> bytes, string source) => Describe(ParseKem(bytes, source), source);

    /// <summary>
    /// Rebuilds the network stored in ONNX model <paramref name="bytes"/> (<see cref="MultiTaskModel.Create"/> of the stored
    /// options: the architecture the file was exported from): same options, bit-identical weights, CPU, eval mode.
    /// </summary>
    public static MultiTaskModel ReadNetwork(ReadOnlySpan<byte> bytes, string source)
    {
        var model = ParseKem(bytes, source);
        var description = Describe(model, source);
        var initializers = model.Graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        Dictionary<string, StoredTensor> unread;
        try { unread = JsonSerializer.Deserialize<Dictionary<string, StoredTensor>>(Meta(model, StateKey, source), Json) ?? new(); }
        catch (JsonException e) { throw new InvalidDataException($"'{source}': the '{StateKey}' metadata does not parse: {e.Message}", e); }
        var network = MultiTaskModel.Create(description.Network);
        using (var scope = NewDisposeScope())
        {
            var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (key, current) in network.state_dict())
            {
                var tensor = initializers.TryGetValue(key, out var stored) ? FromProto(stored, source)
                    : unread.TryGetValue(key, out var kept) ? kept.ToTensor(key, source)
                    : EarlierLayout(key, initializers, source) ?? throw new InvalidDataException($"'{source}' lacks weight '{key}' that a network with its options has: the file is damaged or was written by another KemMl version.");
                if (tensor.dtype != current.dtype || !tensor.shape.SequenceEqual(current.shape))
                    throw new InvalidDataException($"'{source}': weight '{key}' is {tensor.dtype} [{string.Join("×", tensor.shape)}], the network expects {current.dtype} [{string.Join("×", current.shape)}].");
                state[key] = tensor;
            }
            network.load_state_dict(state, strict: true);
        }
        network.eval();
        return network;
    }

    /// <summary>
    /// A weight that files written before KEM fused its token projections store in two parts: KEM's
    /// <c>tokenProjection</c> (rows [Wk_r; Wv_r; Wq_w]) was <c>retrieveKeyValue</c> ([Wk_r; Wv_r]) and <c>writeQuery</c>.
    /// Null when <paramref name="key"/> is not such a weight or the parts are absent.
    /// </summary>
    private static Tensor? EarlierLayout(string key, Dictionary<string, TensorProto> initializers, string source)
    {
        const string fused = ".tokenProjection.";
        var at = key.LastIndexOf(fused, StringComparison.Ordinal);
        if (at < 0) return null;
        var (module, parameter) = (key[..at], key[(at + fused.Length)..]);
        if (!initializers.TryGetValue($"{module}.retrieveKeyValue.{parameter}", out var keyValue)
            || !initializers.TryGetValue($"{module}.writeQuery.{parameter}", out var query)) return null;
        return cat([FromProto(keyValue, source), FromProto(query, source)], 0);
    }

    /// <summary>Rebuilds the network from the .onnx file at <paramref name="path"/> (see <see cref="ReadNetwork"/>).</summary>
    public static MultiTaskModel LoadNetwork(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return ReadNetwork(File.ReadAllBytes(path), path);
    }

    private static ModelProto Parse(ReadOnlySpan<byte> bytes) => ModelProto.Parser.ParseFrom(bytes);

    private static ModelProto ParseKem(ReadOnlySpan<byte> bytes, string source)
    {
        ModelProto model;
        try { model = Parse(bytes); }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{source}' is not an ONNX model (it does not parse: {e.Message}); it may be truncated.", e);
        }
        var format = model.MetadataProps.FirstOrDefault(p => p.Key == FormatKey)?.Value;
        if (format is null)
            throw new InvalidDataException($"'{source}' is not a KemMl network: its ONNX metadata has no '{FormatKey}' entry.");
        if (format != FormatVersion)
            throw new InvalidDataException($"'{source}' is KemMl ONNX format {format}; this KemMl reads format {FormatVersion}.");
        if (model.Graph is null)
            throw new InvalidDataException($"'{source}' has no graph; it may be truncated.");
        return model;
    }

    private static string Meta(ModelProto model, string key, string source) => model.MetadataProps.FirstOrDefault(p => p.Key == key)?.Value
        ?? throw new InvalidDataException($"'{source}' lacks the '{key}' metadata entry that KemMl writes.");

    private static KemOnnxDescription Describe(ModelProto model, string source)
    {
        string Meta(string key) => KemOnnx.Meta(model, key, source);
        MultiTaskNetworkOptions options;
        try { options = JsonSerializer.Deserialize<MultiTaskNetworkOptions>(Meta(NetworkKey), Json) ?? throw new JsonException("null options"); }
        catch (JsonException e) { throw new InvalidDataException($"'{source}': the network options in '{NetworkKey}' do not parse: {e.Message}", e); }
        try { options.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"'{source}': the stored network options are not valid: {e.Message}", e); }
        long opset = model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 0;
        return new KemOnnxDescription(options, Meta(InputKey), Meta(LayoutKey) == "batched", opset);
    }

    private static Tensor FromProto(TensorProto t, string source)
    {
        if (t.DataLocation != 0)
            throw new InvalidDataException($"'{source}': tensor '{t.Name}' keeps its data in an external file, which KemMl does not read.");
        var shape = t.Dims.ToArray();
        long count = shape.Aggregate(1L, (a, b) => a * b);
        var raw = t.RawData.Span;
        switch ((TensorProto.Types.DataType)t.DataType)
        {
            case TensorProto.Types.DataType.Float:
            {
                var values = raw.Length > 0 ? MemoryMarshal.Cast<byte, float>(raw).ToArray() : t.FloatData.ToArray();
                return values.LongLength == count ? torch.tensor(values, shape) : throw Mismatch(t, source, values.LongLength, count);
            }
            case TensorProto.Types.DataType.Int64:
            {
                var values = raw.Length > 0 ? MemoryMarshal.Cast<byte, long>(raw).ToArray() : t.Int64Data.ToArray();
                return values.LongLength == count ? torch.tensor(values, shape) : throw Mismatch(t, source, values.LongLength, count);
            }
            default:
                throw new InvalidDataException($"'{source}': tensor '{t.Name}' has ONNX data type {t.DataType}; KemMl weights are float32 or int64.");
        }
    }

    private static InvalidDataException Mismatch(TensorProto t, string source, long got, long expected) =>
        new($"'{source}': tensor '{t.Name}' holds {got} values for shape [{string.Join("×", t.Dims)}] ({expected}); the file is damaged.");

    /// <summary>A small state_dict entry kept in the metadata: its shape and values (float32 or int64).</summary>
    private sealed record StoredTensor(long[] Shape, float[]? Float32, long[]? Int64)
    {
        public static StoredTensor From(Tensor t) => t.dtype switch
        {
            ScalarType.Float32 => new(t.shape, t.contiguous().data<float>().ToArray(), null),
            ScalarType.Int64 => new(t.shape, null, t.contiguous().data<long>().ToArray()),
            _ => throw new NotSupportedException($"A {t.dtype} state entry cannot be exported; KemMl networks hold float32 and int64 only."),
        };

        public Tensor ToTensor(string key, string source)
        {
            long count = Shape.Aggregate(1L, (a, b) => a * b);
            if (Float32 is { } f && f.LongLength == count) return torch.tensor(f, Shape);
            if (Int64 is { } i && i.LongLength == count) return torch.tensor(i, Shape);
            throw new InvalidDataException($"'{source}': the stored state entry '{key}' does not hold {count} values for its shape; the file is damaged.");
        }
    }
}
