using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.Kem.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Onnx;

/// <summary>
/// Builds one ONNX graph (opset <see cref="KemOnnx.Opset"/>): nodes in the order they are added, the network's weights as
/// initializers named by their state_dict keys (so a reader can load them back by name), and small constants.
/// The op helpers are the vocabulary of <see cref="NetworkGraph"/>: one helper per torch call the network makes.
/// </summary>
internal sealed class OnnxGraph
{
    private readonly GraphProto graph = new() { Name = "kemml" };
    private readonly IReadOnlyDictionary<string, Tensor> weights;
    private readonly HashSet<string> initializers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> constants = new(StringComparer.Ordinal);
    private int counter;

    /// <summary>A graph that reads its weights from <paramref name="weights"/> (a network's state_dict, CPU float32/int64).</summary>
    public OnnxGraph(IReadOnlyDictionary<string, Tensor> weights) => this.weights = weights;

    /// <summary>The graph built so far.</summary>
    public GraphProto Proto => graph;

    /// <summary>
    /// The state_dict entries no node read (e.g. BatchNorm's num_batches_tracked). They are not graph initializers:
    /// onnxruntime warns about every unused initializer at load time.
    /// </summary>
    public IEnumerable<KeyValuePair<string, Tensor>> UnreadWeights() =>
        weights.Where(kv => !initializers.Contains(kv.Key)).OrderBy(kv => kv.Key, StringComparer.Ordinal);

    // ---- graph inputs and outputs -------------------------------------------------------------------------

    /// <summary>Declares a float32 graph input; a null entry of <paramref name="dims"/> is the symbolic batch size "N".</summary>
    public string Input(string name, params long?[] dims)
    {
        graph.Input.Add(ValueInfo(name, TensorProto.Types.DataType.Float, dims));
        return name;
    }

    /// <summary>Names <paramref name="value"/> as the graph output <paramref name="name"/> of the given element type and shape.</summary>
    public void Output(string value, string name, TensorProto.Types.DataType type, params long?[] dims)
    {
        if (value != name) Node("Identity", new[] { value }, new[] { name });
        graph.Output.Add(ValueInfo(name, type, dims));
    }

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, long?[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is { } v ? new TensorShapeProto.Types.Dimension { DimValue = v } : new TensorShapeProto.Types.Dimension { DimParam = "N" });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    // ---- initializers -----------------------------------------------------------------------------------

    /// <summary>The initializer holding state_dict entry <paramref name="key"/> (added on first use).</summary>
    public string Weight(string key)
    {
        if (initializers.Contains(key)) return key;
        if (!weights.TryGetValue(key, out var tensor))
            throw new InvalidOperationException($"The ONNX exporter asked for weight '{key}', which the network does not have: the exporter and the module disagree.");
        graph.Initializer.Add(ToProto(key, tensor));
        initializers.Add(key);
        return key;
    }

    /// <summary>Shape of state_dict entry <paramref name="key"/>.</summary>
    public long[] Shape(string key) => weights.TryGetValue(key, out var t) ? t.shape
        : throw new InvalidOperationException($"The ONNX exporter asked for weight '{key}', which the network does not have: the exporter and the module disagree.");

    /// <summary>A 1-D int64 constant (shapes, axes, sizes), shared between nodes that use the same values.</summary>
    public string Ints(params long[] values)
    {
        string id = "i64:" + string.Join(",", values);
        if (constants.TryGetValue(id, out var name)) return name;
        name = $"const/ints_{string.Join("_", values.Select(v => v < 0 ? "m" + (-v) : v.ToString()))}";
        var proto = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, RawData = Bytes<long>(values) };
        proto.Dims.Add(values.Length);
        return AddConstant(id, proto);
    }

    /// <summary>A 0-d int64 constant (a Gather index).</summary>
    public string Index(long value)
    {
        string id = "idx:" + value;
        if (constants.TryGetValue(id, out var name)) return name;
        return AddConstant(id, new TensorProto { Name = $"const/index_{value}", DataType = (int)TensorProto.Types.DataType.Int64, RawData = Bytes<long>(new[] { value }) });
    }

    /// <summary>A 0-d float32 constant.</summary>
    public string Scalar(float value)
    {
        string id = "f32:" + BitConverter.SingleToInt32Bits(value);
        if (constants.TryGetValue(id, out var name)) return name;
        return AddConstant(id, new TensorProto { Name = $"const/scalar_{constants.Count}", DataType = (int)TensorProto.Types.DataType.Float, RawData = Bytes<float>(new[] { value }) });
    }

    /// <summary>A float32 tensor of shape <paramref name="shape"/> filled with <paramref name="value"/> (ConstantOfShape).</summary>
    public string Full(float value, params long[] shape)
    {
        var fill = new TensorProto { Name = "value", DataType = (int)TensorProto.Types.DataType.Float, RawData = Bytes<float>(new[] { value }) };
        fill.Dims.Add(1);
        return Op("ConstantOfShape", new[] { Ints(shape) }, Attr("value", fill));
    }

    /// <summary>A float32 constant of shape <paramref name="dims"/> (a fixed resampling matrix), named const/<paramref name="name"/>.</summary>
    public string Floats(string name, long[] dims, float[] values)
    {
        string id = "f32t:" + name;
        if (constants.TryGetValue(id, out var existing)) return existing;
        var proto = new TensorProto { Name = "const/" + name, DataType = (int)TensorProto.Types.DataType.Float, RawData = Bytes<float>(values) };
        proto.Dims.AddRange(dims);
        return AddConstant(id, proto);
    }

    private string AddConstant(string id, TensorProto proto)
    {
        graph.Initializer.Add(proto);
        initializers.Add(proto.Name);
        constants[id] = proto.Name;
        return proto.Name;
    }

    /// <summary>A CPU float32 or int64 tensor as a TensorProto with little-endian raw data.</summary>
    internal static TensorProto ToProto(string name, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var host = tensor.detach().cpu().contiguous();
        var proto = new TensorProto { Name = name };
        foreach (var d in host.shape) proto.Dims.Add(d);
        switch (host.dtype)
        {
            case ScalarType.Float32:
                proto.DataType = (int)TensorProto.Types.DataType.Float;
                proto.RawData = Bytes<float>(host.data<float>().ToArray());
                break;
            case ScalarType.Int64:
                proto.DataType = (int)TensorProto.Types.DataType.Int64;
                proto.RawData = Bytes<long>(host.data<long>().ToArray());
                break;
            default:
                throw new NotSupportedException($"Weight '{name}' is {host.dtype}; the ONNX exporter writes float32 and int64 only (move the network to float32 first).");
        }
        return proto;
    }

    private static ByteString Bytes<T>(T[] values) where T : unmanaged
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian; this machine is big-endian.");
        return ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    // ---- nodes ----------------------------------------------------------------------------------------

    /// <summary>Adds one node; returns its output names (fresh unless <paramref name="outputs"/> names them).</summary>
    public string[] Node(string op, string[] inputs, string[]? outputs = null, int outputCount = 1, params AttributeProto[] attributes)
    {
        int id = counter++;
        outputs ??= Enumerable.Range(0, outputCount).Select(i => outputCount == 1 ? $"{op}_{id}" : $"{op}_{id}:{i}").ToArray();
        var node = new NodeProto { OpType = op, Name = $"{op}_{id}" };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
        return outputs;
    }

    /// <summary>A one-output node.</summary>
    public string Op(string op, string[] inputs, params AttributeProto[] attributes) => Node(op, inputs, null, 1, attributes)[0];

    public static AttributeProto Attr(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };
    public static AttributeProto Attr(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };
    public static AttributeProto Attr(string name, string value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };
    public static AttributeProto Attr(string name, long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
    public static AttributeProto Attr(string name, TensorProto value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Tensor, T = value };

    // ---- arithmetic ----------------------------------------------------------------------------------

    public string Add(string a, string b) => Op("Add", new[] { a, b });
    public string Sub(string a, string b) => Op("Sub", new[] { a, b });
    public string Mul(string a, string b) => Op("Mul", new[] { a, b });
    public string Div(string a, string b) => Op("Div", new[] { a, b });
    public string Mul(string a, float b) => b == 1f ? a : Mul(a, Scalar(b));
    public string MatMul(string a, string b) => Op("MatMul", new[] { a, b });
    public string Exp(string x) => Op("Exp", new[] { x });
    public string Abs(string x) => Op("Abs", new[] { x });
    public string Relu(string x) => Op("Relu", new[] { x });
    public string Sigmoid(string x) => Op("Sigmoid", new[] { x });
    public string Tanh(string x) => Op("Tanh", new[] { x });
    /// <summary>torch <c>sum(axis, keepdim: true)</c> (opset 13+: the axes are an input).</summary>
    public string ReduceSum(string x, long axis) => Op("ReduceSum", new[] { x, Ints(axis) }, Attr("keepdims", 1L));
    /// <summary>torch <c>mean(axis, keepdim: true)</c> (opset 17: the axes are an attribute).</summary>
    public string ReduceMean(string x, long axis) => Op("ReduceMean", new[] { x }, Attr("axes", new[] { axis }), Attr("keepdims", 1L));

    /// <summary>Exact (erf) GELU, torch's default: 0.5·x·(1 + erf(x/√2)).</summary>
    public string Gelu(string x)
    {
        var erf = Op("Erf", new[] { Div(x, Scalar(MathF.Sqrt(2f))) });
        return Mul(Mul(x, Add(erf, Scalar(1f))), Scalar(0.5f));
    }

    // ---- shapes ---------------------------------------------------------------------------------------

    /// <summary>Reshape; 0 copies the input's size on that axis, −1 is inferred.</summary>
    public string Reshape(string x, params long[] shape) => Op("Reshape", new[] { x, Ints(shape) });
    public string Transpose(string x, params long[] perm) => Op("Transpose", new[] { x }, Attr("perm", perm));
    public string Unsqueeze(string x, params long[] axes) => Op("Unsqueeze", new[] { x, Ints(axes) });
    public string Squeeze(string x, params long[] axes) => Op("Squeeze", new[] { x, Ints(axes) });
    public string Concat(long axis, params string[] parts) => parts.Length == 1 ? parts[0] : Op("Concat", parts, Attr("axis", axis));

    /// <summary>torch <c>select(axis, index)</c>: the slice at <paramref name="index"/>, axis removed.</summary>
    public string Select(string x, long axis, long index) => Op("Gather", new[] { x, Index(index) }, Attr("axis", axis));

    /// <summary>torch <c>index_select(axis, indices)</c>: the listed slices, axis kept.</summary>
    public string Take(string x, long axis, params long[] indices) => Op("Gather", new[] { x, Ints(indices) }, Attr("axis", axis));

    /// <summary>torch <c>chunk(parts, axis)</c> into equal parts.</summary>
    public string[] Chunk(string x, int parts, long axis) => Node("Split", new[] { x }, null, parts, Attr("axis", axis));

    // ---- layers --------------------------------------------------------------------------------------

    /// <summary>nn.Linear at <paramref name="prefix"/>: x Wᵀ + b (W stays as stored, out×in).</summary>
    public string Linear(string x, string prefix)
    {
        var y = MatMul(x, Transpose(Weight(prefix + ".weight"), 1, 0));
        return weights.ContainsKey(prefix + ".bias") ? Add(y, Weight(prefix + ".bias")) : y;
    }

    /// <summary>nn.LayerNorm at <paramref name="prefix"/> over the last axis (eps 1e-5).</summary>
    public string LayerNorm(string x, string prefix, float eps = 1e-5f) =>
        Op("LayerNormalization", new[] { x, Weight(prefix + ".weight"), Weight(prefix + ".bias") }, Attr("axis", -1L), Attr("epsilon", eps));

    /// <summary>nn.Conv2d at <paramref name="prefix"/> (square kernel read from the weight; bias when the module has one).</summary>
    public string Conv(string x, string prefix, long stride = 1, long padding = 0)
    {
        var w = weights[prefix + ".weight"];
        var inputs = weights.ContainsKey(prefix + ".bias")
            ? new[] { x, Weight(prefix + ".weight"), Weight(prefix + ".bias") }
            : new[] { x, Weight(prefix + ".weight") };
        return Op("Conv", inputs, Attr("kernel_shape", new[] { w.shape[2], w.shape[3] }), Attr("strides", new[] { stride, stride }),
            Attr("pads", new[] { padding, padding, padding, padding }));
    }

    /// <summary>nn.BatchNorm2d at <paramref name="prefix"/> in eval mode: running statistics (eps 1e-5).</summary>
    public string BatchNorm(string x, string prefix, float eps = 1e-5f) => Op("BatchNormalization",
        new[] { x, Weight(prefix + ".weight"), Weight(prefix + ".bias"), Weight(prefix + ".running_mean"), Weight(prefix + ".running_var") },
        Attr("epsilon", eps));

    /// <summary>F.avg_pool2d(x, kernel) (stride = kernel, no padding) on a B×C×h×w map.</summary>
    public string AveragePool(string x, long kernel) => kernel == 1 ? x
        : Op("AveragePool", new[] { x }, Attr("kernel_shape", new[] { kernel, kernel }), Attr("strides", new[] { kernel, kernel }));

    /// <summary>
    /// F.interpolate(mode: Area) of a B×C×<paramref name="inRows"/>×<paramref name="inCols"/> map down to
    /// <paramref name="rows"/>×<paramref name="cols"/>, i.e. torch's adaptive average pooling: output cell i averages input
    /// cells ⌊i·in/out⌋ … ⌈(i+1)·in/out⌉−1. Whole factors are one AveragePool; other ratios two MatMuls with the fixed
    /// averaging matrices (Y = A_r X A_cᵀ).
    /// </summary>
    public string ResizeArea(string x, long inRows, long inCols, long rows, long cols)
    {
        if (inRows % rows == 0 && inCols % cols == 0 && inRows / rows == inCols / cols) return AveragePool(x, inRows / rows);
        var alongCols = Floats($"area_{inCols}to{cols}_T", new[] { inCols, cols }, Transposed(AreaMatrix(inCols, cols), cols, inCols));
        var alongRows = Floats($"area_{inRows}to{rows}", new[] { rows, inRows }, AreaMatrix(inRows, rows));
        return MatMul(alongRows, MatMul(x, alongCols));                                         // (r×R)·(B×C×R×c) → B×C×r×c
    }

    // out×in row-major: row i holds 1/len over torch's adaptive-pool window of output i
    private static float[] AreaMatrix(long inSize, long outSize)
    {
        var m = new float[outSize * inSize];
        for (long i = 0; i < outSize; i++)
        {
            long start = i * inSize / outSize, end = ((i + 1) * inSize + outSize - 1) / outSize;
            for (long j = start; j < end; j++) m[i * inSize + j] = 1f / (end - start);
        }
        return m;
    }

    private static float[] Transposed(float[] m, long rows, long cols)
    {
        var t = new float[m.Length];
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
        return t;
    }

    /// <summary>F.normalize(x, p: 2, dim: axis, eps): x / max(‖x‖₂, eps).</summary>
    public string L2Normalize(string x, long axis, float eps)
    {
        var norm = Op("ReduceL2", new[] { x }, Attr("axes", new[] { axis }), Attr("keepdims", 1L));
        return Div(x, Op("Max", new[] { norm, Scalar(eps) }));
    }

    /// <summary>
    /// Bilinear F.interpolate of a B×C×h×w map to <paramref name="height"/>×<paramref name="width"/>: align_corners=true
    /// ↔ ONNX "align_corners", false ↔ "half_pixel" (torch clamps source coordinates below 0, as onnxruntime does).
    /// </summary>
    public string ResizeBilinear(string x, long height, long width, bool alignCorners)
    {
        var batchAndChannels = Op("Slice", new[] { Op("Shape", new[] { x }), Ints(0), Ints(2) });
        var sizes = Concat(0, batchAndChannels, Ints(height, width));
        return Op("Resize", new[] { x, "", "", sizes },
            Attr("mode", "linear"), Attr("coordinate_transformation_mode", alignCorners ? "align_corners" : "half_pixel"));
    }
}
