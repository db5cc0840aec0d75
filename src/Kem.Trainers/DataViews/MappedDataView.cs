using Microsoft.ML;
using Microsoft.ML.Data;

namespace Kem.Trainers.DataViews;

/// <summary>An IDataView that is its source plus the columns a <see cref="ColumnMapper"/> appends (lazy, per row).</summary>
public sealed class MappedDataView : IDataView
{
    private readonly IDataView source;
    private readonly ColumnMapper mapper;

    /// <summary>Wraps <paramref name="source"/>; <paramref name="mapper"/> must be bound to its schema.</summary>
    public MappedDataView(IDataView source, ColumnMapper mapper)
    {
        (this.source, this.mapper) = (source, mapper);
        Schema = mapper.BuildOutputSchema();
    }

    /// <inheritdoc />
    public bool CanShuffle => source.CanShuffle;
    /// <inheritdoc />
    public DataViewSchema Schema { get; }
    /// <inheritdoc />
    public long? GetRowCount() => source.GetRowCount();

    /// <inheritdoc />
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var (sourceColumns, active) = MappedRow.Split(Schema, mapper, columnsNeeded);
        return new MappedCursor(source.GetRowCursor(sourceColumns, rand), mapper, Schema, active);
    }

    /// <inheritdoc />
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class MappedCursor : DataViewRowCursor
    {
        private readonly DataViewRowCursor input;
        private readonly MappedRow row;

        public MappedCursor(DataViewRowCursor input, ColumnMapper mapper, DataViewSchema schema, bool[] active)
        {
            this.input = input;
            row = new MappedRow(input, mapper, schema, active);
        }

        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override DataViewSchema Schema => row.Schema;
        public override bool MoveNext() => input.MoveNext();
        public override bool IsColumnActive(DataViewSchema.Column column) => row.IsColumnActive(column);
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => row.GetGetter<TValue>(column);
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        protected override void Dispose(bool disposing)
        {
            if (disposing) { row.Dispose(); input.Dispose(); }
            base.Dispose(disposing);
        }
    }
}

/// <summary>A row of the output schema: input columns pass through, appended ones come from the mapper's getters.</summary>
internal sealed class MappedRow : DataViewRow
{
    private readonly DataViewRow input;
    private readonly int inputCount;
    private readonly bool[] active;
    private readonly Delegate?[] getters;

    public MappedRow(DataViewRow input, ColumnMapper mapper, DataViewSchema schema, bool[] active)
    {
        (this.input, Schema, this.active) = (input, schema, active);
        inputCount = mapper.InputSchema.Count;
        getters = mapper.CreateGetters(input, i => active[inputCount + i]);
    }

    public override long Position => input.Position;
    public override long Batch => input.Batch;
    public override DataViewSchema Schema { get; }
    public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();
    public override bool IsColumnActive(DataViewSchema.Column column) => active[column.Index];

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
    {
        if (column.Index < inputCount) return input.GetGetter<TValue>(input.Schema[column.Index]);
        if (!active[column.Index]) throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor; request it in columnsNeeded.");
        return getters[column.Index - inputCount] as ValueGetter<TValue>
            ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}; it cannot be read as {typeof(TValue).Name}.");
    }

    /// <summary>Splits the requested output columns into the source columns to activate and an activity mask over the output schema.</summary>
    public static (IEnumerable<DataViewSchema.Column> Source, bool[] Active) Split(
        DataViewSchema outputSchema, ColumnMapper mapper, IEnumerable<DataViewSchema.Column> requested)
    {
        var active = new bool[outputSchema.Count];
        foreach (var c in requested) active[c.Index] = true;
        int inputCount = mapper.InputSchema.Count;
        var source = new HashSet<int>(Enumerable.Range(0, inputCount).Where(i => active[i]));
        if (active.Skip(inputCount).Any(a => a))
            foreach (var d in mapper.Dependencies) source.Add(d.Index);
        return (source.Select(i => mapper.InputSchema[i]), active);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            foreach (var g in getters) (g?.Target as IDisposable)?.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>The <see cref="IRowToRowMapper"/> face of a <see cref="ColumnMapper"/> (used by PredictionEngine).</summary>
public sealed class MappedRowToRowMapper : IRowToRowMapper
{
    private readonly ColumnMapper mapper;

    /// <summary>Wraps <paramref name="mapper"/>.</summary>
    public MappedRowToRowMapper(ColumnMapper mapper)
    {
        this.mapper = mapper;
        OutputSchema = mapper.BuildOutputSchema();
    }

    /// <inheritdoc />
    public DataViewSchema InputSchema => mapper.InputSchema;
    /// <inheritdoc />
    public DataViewSchema OutputSchema { get; }

    /// <inheritdoc />
    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var (source, _) = MappedRow.Split(OutputSchema, mapper, dependingColumns);
        return source;
    }

    /// <inheritdoc />
    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
    {
        var active = new bool[OutputSchema.Count];
        foreach (var c in activeColumns) active[c.Index] = true;
        return new MappedRow(input, mapper, OutputSchema, active);
    }
}
