using System.Runtime.CompilerServices;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Kem.Trainers;

/// <summary>
/// The one place that reaches a non-public ML.NET member: <see cref="SchemaShape.Column"/>'s constructor is internal,
/// so an external estimator cannot otherwise declare the columns it adds in <c>GetOutputSchema</c>.
/// .NET's supported <see cref="UnsafeAccessorAttribute"/> binds to it at JIT time; if ML.NET changes that
/// constructor, the first call throws <see cref="MissingMethodException"/> (a test pins this).
/// </summary>
public static class SchemaShapeColumns
{
    [UnsafeAccessor(UnsafeAccessorKind.Constructor)]
    private static extern SchemaShape.Column Construct(
        string name, SchemaShape.Column.VectorKind vecKind, DataViewType itemType, bool isKey, SchemaShape? annotations);

    /// <summary>A known-size float vector column.</summary>
    public static SchemaShape.Column Vector(string name, DataViewType itemType) =>
        Construct(name, SchemaShape.Column.VectorKind.Vector, itemType, false, null);

    /// <summary>A column of any shape.</summary>
    public static SchemaShape.Column Create(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey = false) =>
        Construct(name, kind, itemType, isKey, null);

    /// <summary>The shape of a concrete schema (ML.NET's own <c>SchemaShape.Create</c> is internal too).</summary>
    public static SchemaShape FromSchema(DataViewSchema schema) => new(schema.Where(c => !c.IsHidden).Select(c => c.Type switch
    {
        VectorDataViewType v => Construct(c.Name, v.IsKnownSize ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.VariableVector,
            ItemOf(v.ItemType), v.ItemType is KeyDataViewType, null),
        var t => Construct(c.Name, SchemaShape.Column.VectorKind.Scalar, ItemOf(t), t is KeyDataViewType, null),
    }));

    /// <summary>Finds the column named <paramref name="name"/> (ML.NET's <c>TryFindColumn</c> is internal).</summary>
    public static bool TryFind(this SchemaShape shape, string name, out SchemaShape.Column column)
    {
        foreach (var c in shape)
            if (c.Name == name) { column = c; return true; }
        column = default;
        return false;
    }

    // A key column is described by its underlying number type plus isKey.
    private static DataViewType ItemOf(DataViewType t) => t is KeyDataViewType k
        ? k.RawType == typeof(byte) ? NumberDataViewType.Byte : k.RawType == typeof(ushort) ? NumberDataViewType.UInt16
          : k.RawType == typeof(ulong) ? NumberDataViewType.UInt64 : NumberDataViewType.UInt32
        : t;

    /// <summary>Adds or replaces <paramref name="added"/> in <paramref name="input"/> (same name = the new column hides the old one).</summary>
    public static SchemaShape Append(SchemaShape input, IEnumerable<SchemaShape.Column> added)
    {
        var columns = input.ToDictionary(c => c.Name);
        foreach (var c in added) columns[c.Name] = c;
        return new SchemaShape(columns.Values);
    }
}
