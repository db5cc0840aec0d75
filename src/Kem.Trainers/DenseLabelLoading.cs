using Kem.Trainers.DataViews;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Data;

namespace Kem.Trainers;

/// <summary>Transforms of the multi-task catalog.</summary>
public sealed class MultiTaskTransforms
{
    private readonly MLContext context;

    internal MultiTaskTransforms(MLContext context) => this.context = context;

    /// <summary>
    /// Loads a dense label map per row from the file named in <paramref name="inputColumnName"/> (text; relative paths are
    /// taken under <paramref name="folder"/>) into a float vector column planes×H×W, resized with nearest neighbour to
    /// <paramref name="height"/>×<paramref name="width"/> (the network's input size). PNG (index, gray 8/16-bit, RGB normals)
    /// and .npy are read by KemMl itself, so class indices and 16-bit values survive.
    /// </summary>
    public DenseLabelLoadingEstimator LoadDenseLabels(
        string outputColumnName, string inputColumnName, int height, int width,
        int planes = 1, string? folder = null, DenseLabelEncoding encoding = DenseLabelEncoding.Identity)
        => new(outputColumnName, inputColumnName, height, width, planes, folder, encoding);
}

/// <summary>Estimator of <see cref="DenseLabelLoadingTransformer"/> (trivial: nothing to learn).</summary>
public sealed class DenseLabelLoadingEstimator : IEstimator<DenseLabelLoadingTransformer>
{
    private readonly DenseLabelLoadingTransformer transformer;

    internal DenseLabelLoadingEstimator(string output, string input, int height, int width, int planes, string? folder, DenseLabelEncoding encoding)
    {
        if (height < 1 || width < 1) throw new ArgumentOutOfRangeException(nameof(height), $"LoadDenseLabels: size {height}×{width} must be positive (the network's input size).");
        if (planes is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(planes), planes, "LoadDenseLabels: planes must be 1 (maps) or 3 (normals).");
        transformer = new DenseLabelLoadingTransformer(output, input, height, width, planes, folder, encoding);
    }

    /// <inheritdoc />
    public DenseLabelLoadingTransformer Fit(IDataView input)
    {
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        if (!inputSchema.TryFind(transformer.InputColumnName, out var c))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"LoadDenseLabels: input column '{transformer.InputColumnName}' (label file paths) is missing.");
        if (c.Kind != SchemaShape.Column.VectorKind.Scalar || c.ItemType is not TextDataViewType)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"LoadDenseLabels: input column '{transformer.InputColumnName}' must be a text column of file paths; it is {c.Kind} of {c.ItemType}.");
        return SchemaShapeColumns.Append(inputSchema, new[] { SchemaShapeColumns.Vector(transformer.OutputColumnName, NumberDataViewType.Single) });
    }
}

/// <summary>Reads label files into float vector columns (see <see cref="MultiTaskTransforms.LoadDenseLabels"/>).</summary>
public sealed class DenseLabelLoadingTransformer : ITransformer
{
    internal DenseLabelLoadingTransformer(string output, string input, int height, int width, int planes, string? folder, DenseLabelEncoding encoding)
        => (OutputColumnName, InputColumnName, Height, Width, Planes, Folder, Encoding) = (output, input, height, width, planes, folder, encoding);

    /// <summary>Output column.</summary>
    public string OutputColumnName { get; }
    /// <summary>Input column of file paths.</summary>
    public string InputColumnName { get; }
    /// <summary>Output height.</summary>
    public int Height { get; }
    /// <summary>Output width.</summary>
    public int Width { get; }
    /// <summary>Planes (1, or 3 for normals).</summary>
    public int Planes { get; }
    /// <summary>Folder for relative paths.</summary>
    public string? Folder { get; }
    /// <summary>Value encoding.</summary>
    public DenseLabelEncoding Encoding { get; }

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;
    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => new Mapper(this, inputSchema).BuildOutputSchema();
    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new MappedRowToRowMapper(new Mapper(this, inputSchema));
    /// <inheritdoc />
    public IDataView Transform(IDataView input) => new MappedDataView(input, new Mapper(this, input.Schema));

    /// <summary>Not yet: ML.NET gives external assemblies no public way to save a custom transformer.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(
        "DenseLabelLoadingTransformer cannot be written into an ML.NET model zip: labels are needed for training and evaluation only. " +
        "Fit the label loaders in a separate pipeline from the one you save.");

    private sealed class Mapper : ColumnMapper
    {
        private readonly DenseLabelLoadingTransformer parent;
        private readonly DataViewSchema.Column input;

        public Mapper(DenseLabelLoadingTransformer parent, DataViewSchema schema) : base(schema)
        {
            this.parent = parent;
            input = schema.GetColumnOrNull(parent.InputColumnName)
                ?? throw new ArgumentOutOfRangeException(nameof(schema), $"LoadDenseLabels: input column '{parent.InputColumnName}' (label file paths) is missing.");
            if (input.Type is not TextDataViewType)
                throw new ArgumentOutOfRangeException(nameof(schema), $"LoadDenseLabels: input column '{parent.InputColumnName}' must be text (file paths); it is {input.Type}.");
            OutputColumns = new[] { new DataViewSchema.DetachedColumn(parent.OutputColumnName, new VectorDataViewType(NumberDataViewType.Single, parent.Planes, parent.Height, parent.Width)) };
        }

        public override IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; }
        public override IEnumerable<DataViewSchema.Column> Dependencies => new[] { input };

        public override Delegate?[] CreateGetters(DataViewRow row, Func<int, bool> isActive)
        {
            if (!isActive(0)) return new Delegate?[1];
            var pathGetter = row.GetGetter<ReadOnlyMemory<char>>(input);
            ReadOnlyMemory<char> text = default;
            ValueGetter<VBuffer<float>> getter = (ref VBuffer<float> dst) =>
            {
                pathGetter(ref text);
                string path = text.ToString().Trim();
                if (path.Length == 0)
                    throw new InvalidDataException($"LoadDenseLabels: row {row.Position} has an empty path in column '{parent.InputColumnName}'.");
                if (parent.Folder is not null && !Path.IsPathRooted(path)) path = Path.Combine(parent.Folder, path);
                float[] values;
                try { values = DenseLabelFile.Read(path, parent.Planes, parent.Height, parent.Width, parent.Encoding); }
                catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException)
                {
                    throw new InvalidDataException($"LoadDenseLabels → column '{parent.OutputColumnName}': {e.Message}", e);
                }
                var editor = VBufferEditor.Create(ref dst, values.Length);
                values.AsSpan().CopyTo(editor.Values);
                dst = editor.Commit();
            };
            return new Delegate?[] { getter };
        }
    }
}
