using Microsoft.ML;
using Microsoft.ML.Data;

namespace Kem.Trainers.DataViews;

/// <summary>
/// Computes columns appended to a row from columns of that row. One mapper serves <see cref="MappedDataView"/>
/// (Transform over a whole IDataView) and <see cref="MappedRowToRowMapper"/> (PredictionEngine), so both paths
/// compute the same values.
/// </summary>
public abstract class ColumnMapper
{
    /// <summary>The input schema this mapper was bound to.</summary>
    public DataViewSchema InputSchema { get; }

    /// <summary>Binds to <paramref name="inputSchema"/>; derived constructors check their input columns there.</summary>
    protected ColumnMapper(DataViewSchema inputSchema) => InputSchema = inputSchema;

    /// <summary>The appended columns (name, type, annotations).</summary>
    public abstract IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; }

    /// <summary>Input columns needed to compute any output column.</summary>
    public abstract IEnumerable<DataViewSchema.Column> Dependencies { get; }

    /// <summary>
    /// Getters for the appended columns (index = position in <see cref="OutputColumns"/>; null when inactive),
    /// reading from <paramref name="input"/>, whose dependency columns are active.
    /// </summary>
    public abstract Delegate?[] CreateGetters(DataViewRow input, Func<int, bool> isActive);

    /// <summary>The output schema: every input column (same indices), then the appended ones.</summary>
    public DataViewSchema BuildOutputSchema()
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(InputSchema.Select(c => new DataViewSchema.DetachedColumn(c)));
        builder.AddColumns(OutputColumns);
        return builder.ToSchema();
    }
}
