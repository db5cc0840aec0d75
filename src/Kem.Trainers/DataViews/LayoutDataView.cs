using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Kem.Data;

namespace Kem.Trainers.DataViews;

/// <summary>
/// A lazy IDataView over one split of a dataset in a multi-task folder layout: columns <c>Id</c> (text), <c>Image</c>
/// (Single 3×H×W, 0..255, resized bicubically or bilinearly) and one label column per task named like the task (Single
/// P×H×W, resized with nearest neighbour). Files are decoded when a cursor asks for the row; every listed file is checked
/// for existence when the view is built, so a missing file fails early and by name. A label whose stored size differs from
/// its image's is an error naming both files.
/// </summary>
internal sealed class LayoutDataView : IDataView
{
    public const string IdColumn = "Id";
    public const string ImageColumn = "Image";

    private readonly IMultiTaskLayout layout;
    private readonly IReadOnlyList<string> ids;
    private readonly int height, width;
    private readonly ImageResampling resampling;

    public LayoutDataView(IMultiTaskLayout layout, string split, int height, int width, ImageResampling resampling)
    {
        if (height < 1 || width < 1) throw new ArgumentOutOfRangeException(nameof(height), $"Output size {height}×{width} must be positive (the network's input size).");
        (this.layout, this.height, this.width, this.resampling) = (layout, height, width, resampling);
        ids = layout.ReadSplit(split);
        if (ids.Count == 0) throw new InvalidDataException($"Split '{split}' of '{layout.Root}' lists no images.");
        var missing = ids.SelectMany(id => layout.RequiredFiles(id)).Where(f => !File.Exists(f)).Take(4).ToArray();
        if (missing.Length > 0)
            throw new FileNotFoundException(
                $"'{missing[0]}' is missing (split '{split}' of '{layout.Root}' lists it{(missing.Length > 1 ? $"; also missing: {string.Join(", ", missing.Skip(1))}{(missing.Length == 4 ? ", …" : "")}" : "")}).",
                missing[0]);

        var builder = new DataViewSchema.Builder();
        builder.AddColumn(IdColumn, TextDataViewType.Instance);
        builder.AddColumn(ImageColumn, new VectorDataViewType(NumberDataViewType.Single, 3, height, width));
        foreach (var task in layout.Tasks)
            builder.AddColumn(task.Name, new VectorDataViewType(NumberDataViewType.Single, task.LabelPlanes, height, width));
        Schema = builder.ToSchema();
    }

    public bool CanShuffle => true;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => ids.Count;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var order = Enumerable.Range(0, ids.Count).ToArray();
        if (rand is not null)
            for (int i = order.Length - 1; i > 0; i--)
            {
                int j = rand.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
        var active = new bool[Schema.Count];
        foreach (var c in columnsNeeded) active[c.Index] = true;
        return new Cursor(this, order, active);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor(LayoutDataView parent, int[] order, bool[] active) : DataViewRowCursor
    {
        private long position = -1;
        private (int Height, int Width)? imageSize; // of the current row, read from the header when a label needs it

        public override long Position => position;
        public override long Batch => 0;
        public override DataViewSchema Schema => parent.Schema;
        public override bool IsColumnActive(DataViewSchema.Column column) => active[column.Index];

        public override bool MoveNext()
        {
            if (position + 1 >= order.Length) { position = order.Length; return false; }
            position++;
            imageSize = null;
            return true;
        }

        private string Id => parent.ids[order[position]];

        public override ValueGetter<DataViewRowId> GetIdGetter() =>
            (ref DataViewRowId value) => value = new DataViewRowId((ulong)order[position], 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!active[column.Index]) throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor; request it in columnsNeeded.");
            Delegate getter = column.Index switch
            {
                0 => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) => value = Id.AsMemory()),
                1 => Vector(() => ImageFile.ReadPlanes(parent.layout.ImageFile(Id), parent.height, parent.width, parent.resampling)),
                _ => Vector(() => Label(column.Index - 2)),
            };
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}; it cannot be read as {typeof(TValue).Name}.");
        }

        private float[] Label(int task)
        {
            var map = parent.layout.ReadLabel(task, Id);
            if (!map.FitsAnySize)
            {
                string image = parent.layout.ImageFile(Id);
                imageSize ??= ImageFile.Size(image);
                if (map.Height != imageSize.Value.Height || map.Width != imageSize.Value.Width)
                    throw new InvalidDataException(
                        $"Task '{parent.layout.Tasks[task].Name}' of sample '{Id}': the label is {map.Height}×{map.Width} but the image '{image}' is {imageSize.Value.Height}×{imageSize.Value.Width} " +
                        $"(label file '{parent.layout.LabelFile(task, Id)}').");
            }
            return DenseLabelFile.ResizeNearest(map.Values, map.Planes, map.Height, map.Width, parent.height, parent.width);
        }

        private static ValueGetter<VBuffer<float>> Vector(Func<float[]> read) => (ref VBuffer<float> dst) =>
        {
            float[] values = read();
            var editor = VBufferEditor.Create(ref dst, values.Length);
            values.AsSpan().CopyTo(editor.Values);
            dst = editor.Commit();
        };
    }
}
