namespace Microsoft.ML.Kem.Data;

/// <summary>What <see cref="NyudLayoutWriter.Write"/> produced.</summary>
/// <param name="Root">Dataset root folder.</param>
/// <param name="TrainIds">Ids listed in <c>gt_sets/train.txt</c>.</param>
/// <param name="ValIds">Ids listed in <c>gt_sets/val.txt</c>.</param>
/// <param name="Width">Image width in pixels.</param>
/// <param name="Height">Image height in pixels.</param>
public sealed record NyudLayoutSummary(string Root, IReadOnlyList<string> TrainIds, IReadOnlyList<string> ValIds, int Width, int Height);

/// <summary>Writes generated scenes in the NYUD-v2 multi-task layout (<see cref="NyudLayout"/>, MODEL-SPEC §10), every file atomically.</summary>
public static class NyudLayoutWriter
{
    private static readonly string[] Folders =
    [
        NyudLayout.ImagesFolder, NyudLayout.SegmentationFolder, NyudLayout.DepthFolder, NyudLayout.NormalsFolder,
        NyudLayout.EdgeFolder, NyudLayout.SaliencyFolder, NyudLayout.PartsFolder, NyudLayout.SplitsFolder,
    ];

    /// <summary>
    /// Generates images 0 .. trainCount − 1 as the train split and trainCount .. trainCount + valCount − 1 as the val split
    /// (ids = zero-padded indices), writes them in parallel under <paramref name="root"/>, then the split lists.
    /// </summary>
    public static NyudLayoutSummary Write(string root, SceneGenerator generator, int trainCount, int valCount)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentOutOfRangeException.ThrowIfNegative(trainCount);
        ArgumentOutOfRangeException.ThrowIfNegative(valCount);
        CreateFolders(root);
        // Samples are generated and written one by one, so memory stays flat for any dataset size.
        Parallel.For(0, trainCount + valCount, index => WriteFiles(root, NyudLayout.IdOf(index), generator.Generate(index)));

        string[] train = Enumerable.Range(0, trainCount).Select(NyudLayout.IdOf).ToArray();
        string[] val = Enumerable.Range(trainCount, valCount).Select(NyudLayout.IdOf).ToArray();
        WriteSplit(root, NyudLayout.TrainSplit, train);
        WriteSplit(root, NyudLayout.ValSplit, val);
        return new NyudLayoutSummary(root, train, val, generator.Options.Width, generator.Options.Height);
    }

    /// <summary>Writes one sample's image and label files under <paramref name="root"/> (creating the folders if needed).</summary>
    public static void WriteSample(string root, string id, SceneSample sample)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        ArgumentNullException.ThrowIfNull(sample);
        CreateFolders(root);
        WriteFiles(root, id, sample);
    }

    /// <summary>Writes a split list: one id per line.</summary>
    public static void WriteSplit(string root, string split, IEnumerable<string> ids)
    {
        Directory.CreateDirectory(Path.Combine(root, NyudLayout.SplitsFolder));
        string text = string.Concat(ids.Select(id => id + "\n"));
        AtomicFile.WriteAllBytes(NyudLayout.SplitFile(root, split), System.Text.Encoding.UTF8.GetBytes(text));
    }

    private static void CreateFolders(string root)
    {
        foreach (string folder in Folders)
            Directory.CreateDirectory(Path.Combine(root, folder));
    }

    private static void WriteFiles(string root, string id, SceneSample s)
    {
        int width = s.Width, height = s.Height, pixels = width * height;
        string File(string folder, string extension) => NyudLayout.FileOf(root, folder, id, extension);

        PngCodec.WriteRgb(File(NyudLayout.ImagesFolder, ".png"), s.Rgb, width, height);
        // NYUD convention: 0 = void, class c stored as c + 1.
        PngCodec.WriteGray8(File(NyudLayout.SegmentationFolder, ".png"), ToBytes(s.Segmentation, offset: 1, scale: 1), width, height);
        NpyFile.Write(File(NyudLayout.DepthFolder, ".npy"), [height, width], s.Depth);
        // Normals are planes (3×H×W) in memory but channels-last (H×W×3) in the file.
        var normals = new float[3 * pixels];
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < 3; c++)
                normals[3 * i + c] = s.Normals[c * pixels + i];
        NpyFile.Write(File(NyudLayout.NormalsFolder, ".npy"), [height, width, 3], normals);
        NpyFile.Write(File(NyudLayout.EdgeFolder, ".npy"), [height, width], s.Boundaries);
        PngCodec.WriteGray8(File(NyudLayout.SaliencyFolder, ".png"), ToBytes(s.Saliency, offset: 0, scale: 255), width, height);
        PngCodec.WriteIndexed(File(NyudLayout.PartsFolder, ".png"), ToBytes(s.Parts, offset: 0, scale: 1), width, height);
    }

    private static byte[] ToBytes(float[] values, int offset, int scale)
    {
        var bytes = new byte[values.Length];
        for (int i = 0; i < values.Length; i++)
            bytes[i] = checked((byte)((int)values[i] * scale + offset));
        return bytes;
    }
}
