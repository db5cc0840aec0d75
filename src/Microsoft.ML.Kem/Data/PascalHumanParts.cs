namespace Microsoft.ML.Kem.Data;

/// <summary>
/// PASCAL-Context human parts from PASCAL-Part annotations (MODEL-SPEC §10): a MAT v5 file holding struct <c>anno</c> with
/// <c>anno.objects(i).class</c> / <c>.class_ind</c>, <c>.mask</c> and <c>.parts(j).part_name</c>, <c>.parts(j).mask</c>.
/// Objects of class 15 (person) that have parts are painted part by part into 6 groups + background 0; when no pixel
/// gets a part (no person, or no annotated parts) the whole map is 255 = ignore (MODEL-SPEC §8, §11 step 4).
/// </summary>
public static class PascalHumanParts
{
    /// <summary>VOC class id of "person".</summary>
    public const int PersonClass = 15;
    /// <summary>Classes of the parts task: background + 6 groups.</summary>
    public const int ClassCount = 7;
    /// <summary>Label of pixels to ignore.</summary>
    public const byte Ignore = 255;

    /// <summary>Names of the 7 classes, in label order.</summary>
    public static IReadOnlyList<string> ClassNames { get; } = ["background", "head", "torso", "uarm", "larm", "uleg", "lleg"];

    /// <summary>PASCAL-Part person part name → group (head 1, torso 2, upper arms 3, lower arms and hands 4, upper legs 5, lower legs and feet 6).</summary>
    public static IReadOnlyDictionary<string, byte> PartGroups { get; } = new Dictionary<string, byte>(StringComparer.Ordinal)
    {
        ["hair"] = 1, ["head"] = 1, ["lear"] = 1, ["rear"] = 1, ["leye"] = 1, ["reye"] = 1, ["lebrow"] = 1, ["rebrow"] = 1,
        ["mouth"] = 1, ["nose"] = 1,
        ["neck"] = 2, ["torso"] = 2,
        ["luarm"] = 3, ["ruarm"] = 3,
        ["llarm"] = 4, ["rlarm"] = 4, ["lhand"] = 4, ["rhand"] = 4,
        ["luleg"] = 5, ["ruleg"] = 5,
        ["llleg"] = 6, ["rlleg"] = 6, ["lfoot"] = 6, ["rfoot"] = 6,
    };

    /// <summary>Reads <c>human_parts/&lt;id&gt;.mat</c> into a row-major label map (0..6, or all 255).</summary>
    public static PixelMap<byte> Read(string path) => FromAnnotation(MatFile.Read(path), path);

    /// <summary>
    /// The label map of a parsed annotation file. The map has the size of the object masks; a file without objects gives a
    /// 1×1 map of 255 (all-ignore at any size). <paramref name="source"/> names the file in errors.
    /// </summary>
    public static PixelMap<byte> FromAnnotation(IReadOnlyDictionary<string, MatArray> variables, string source)
    {
        if (!variables.TryGetValue("anno", out var annoArray) || annoArray is not MatStructArray { Count: 1 } anno)
            throw Invalid(source, "has no 1×1 struct variable 'anno'");
        var objects = anno.Field(0, "objects") switch
        {
            MatStructArray s => s,
            MatNumericArray { Count: 0 } => null, // objects = []
            null => throw Invalid(source, "anno has no field 'objects'"),
            var other => throw Invalid(source, $"anno.objects is a {other.GetType().Name}, not a struct array"),
        };
        if (objects is null || objects.Count == 0) return new PixelMap<byte>(1, 1, [Ignore]);

        int height = -1, width = -1;
        byte[]? target = null;
        for (int i = 0; i < objects.Count; i++)
        {
            var mask = Mask(objects.Field(i, "mask"), source, $"anno.objects({i + 1}).mask");
            if (height < 0) (height, width) = (mask.Rows, mask.Dimensions[1]);
            CheckSize(mask, height, width, source, $"anno.objects({i + 1}).mask");
            if (!IsPerson(objects, i, source)) continue;
            if (objects.Field(i, "parts") is not MatStructArray { Count: > 0 } parts) continue; // person without part annotation
            target ??= new byte[height * width];
            for (int j = 0; j < parts.Count; j++)
            {
                string where = $"anno.objects({i + 1}).parts({j + 1})";
                string name = parts.Field(j, "part_name") is MatCharArray c ? c.Text : throw Invalid(source, $"{where}.part_name is missing or not text");
                if (!PartGroups.TryGetValue(name, out byte group))
                    throw Invalid(source, $"{where}.part_name '{name}' is not a person part name ({string.Join(", ", PartGroups.Keys)})");
                var partMask = Mask(parts.Field(j, "mask"), source, $"{where}.mask");
                CheckSize(partMask, height, width, source, $"{where}.mask");
                Paint(target, partMask, group, height, width);
            }
        }
        if (target is null || Array.TrueForAll(target, v => v == 0))
            return new PixelMap<byte>(width, height, Enumerable.Repeat(Ignore, height * width).ToArray());
        return new PixelMap<byte>(width, height, target);
    }

    private static bool IsPerson(MatStructArray objects, int i, string source) => objects.Field(i, "class_ind") switch
    {
        MatNumericArray { Count: 1 } id => id[0] == PersonClass,
        _ => objects.Field(i, "class") is MatCharArray name
            ? name.Text == "person"
            : throw Invalid(source, $"anno.objects({i + 1}) has neither a numeric 'class_ind' nor a 'class' name"),
    };

    private static MatNumericArray Mask(MatArray? array, string source, string where) =>
        array is MatNumericArray { Dimensions.Length: 2 } mask ? mask
            : throw Invalid(source, $"{where} is missing or not a 2-D numeric/logical array");

    private static void CheckSize(MatNumericArray mask, int height, int width, string source, string where)
    {
        if (mask.Rows != height || mask.Dimensions[1] != width)
            throw Invalid(source, $"{where} is {mask.Rows}×{mask.Dimensions[1]} but the first object mask is {height}×{width}");
    }

    /// <summary>Later parts overwrite earlier ones, as in the public loaders. The mask is column-major.</summary>
    private static void Paint(byte[] target, MatNumericArray mask, byte group, int height, int width)
    {
        for (int c = 0; c < width; c++)
            for (int r = 0; r < height; r++)
                if (mask[c * height + r] != 0) target[r * width + c] = group;
    }

    private static InvalidDataException Invalid(string source, string problem) =>
        new($"'{source}': human-parts annotation {problem}.");
}
