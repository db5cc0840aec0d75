using System.Buffers.Binary;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Onnx;
using Microsoft.ML.Kem.Training;
using Microsoft.ML.Runtime;
using TorchSharp;

namespace Kem.Trainers;

/// <summary>
/// Model zips of multi-task networks, through ML.NET's public API only (<c>mlContext.MultiTask().Model</c>).
/// A zip holds the network as the ONNX graph of an ML.NET OnnxTransformer (see <see cref="MultiTaskKemTransformer"/>),
/// so <c>mlContext.Model.Load</c> scores it in any process with Microsoft.ML.OnnxTransformer and no TorchSharp;
/// <see cref="LoadKemTransformer"/> rebuilds the TorchSharp network from it, bit for bit, to fine-tune or run on a GPU.
/// </summary>
public sealed class MultiTaskModelOperations
{
    private readonly MLContext context;

    internal MultiTaskModelOperations(MLContext context) => this.context = context;

    /// <summary>
    /// Writes <paramref name="model"/> (a fitted <see cref="MultiTaskKemTransformer"/>, or any chain holding one) as an
    /// ML.NET model zip at <paramref name="path"/>. Atomic: the zip is written to a temporary file beside the target and
    /// renamed over it only when complete, so an interrupted save never leaves a half-written file at
    /// <paramref name="path"/> (<c>mlContext.Model.Save(model, schema, path)</c> writes the same zip, but in place).
    /// </summary>
    public void Save(ITransformer model, DataViewSchema? inputSchema, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var temporary = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                context.Model.Save(model, inputSchema, stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    /// <summary>
    /// Loads a model zip like <c>mlContext.Model.Load</c>, but a missing, truncated or foreign file gives an
    /// <see cref="InvalidDataException"/> (or <see cref="FileNotFoundException"/>) that names the file.
    /// </summary>
    public ITransformer Load(string path, out DataViewSchema inputSchema)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Model zip '{path}' does not exist.", path);
        try
        {
            return context.Model.Load(path, out inputSchema);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{path}' is not a readable ML.NET model zip ({e.GetType().Name}: {e.Message}). " +
                "It may be truncated (an interrupted copy or save) or not a model zip at all.", e);
        }
    }

    /// <summary>
    /// Rebuilds the TorchSharp transformer stored in the zip (or standalone .onnx file) at <paramref name="path"/>:
    /// the same network options and bit-identical weights, on <paramref name="device"/>, for GPU inference or as the
    /// starting point of <see cref="MultiTaskKemTrainer.Fit(IDataView, IDataView?, MultiTaskKemTransformer)"/>.
    /// Label column names are not stored: they default to the task names.
    /// </summary>
    public MultiTaskKemTransformer LoadKemTransformer(string path, ComputeDevice device = ComputeDevice.Cpu)
    {
        var bytes = ReadOnnx(path);
        var description = KemOnnx.Describe(bytes, path);
        var network = KemOnnx.ReadNetwork(bytes, path);
        network.to(Devices.Resolve(device));
        network.eval();
        var tasks = description.Network.Tasks.Select(t => new TaskColumn(t)).ToArray();
        return new MultiTaskKemTransformer(((IHostEnvironment)context).Register(nameof(MultiTaskKemTransformer)), network, description.InputName, tasks, result: null);
    }

    /// <summary>
    /// The KemMl ONNX model inside the model zip at <paramref name="path"/> (or the bytes of a standalone .onnx file).
    /// ML.NET stores an OnnxTransformer's graph as one zip entry, a 4-byte length and the model bytes; this finds the
    /// entry whose bytes are a KemMl graph rather than trusting an entry name.
    /// </summary>
    public static byte[] ReadOnnx(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
        byte[] file = File.ReadAllBytes(path);
        if (KemOnnx.IsKemModel(file)) return file;                              // a standalone .onnx file
        try
        {
            using var zip = new ZipArchive(new MemoryStream(file), ZipArchiveMode.Read);
            foreach (var entry in zip.Entries.Where(e => e.Length > 4))
            {
                using var stream = entry.Open();
                var bytes = new byte[entry.Length];
                stream.ReadExactly(bytes);
                if (BinaryPrimitives.ReadInt32LittleEndian(bytes) == bytes.Length - 4 && KemOnnx.IsKemModel(bytes.AsSpan(4)))
                    return bytes[4..];
            }
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' is neither a KemMl .onnx file nor a readable zip ({e.Message}); it may be truncated.", e);
        }
        throw new InvalidDataException($"'{path}' holds no KemMl network: it is a zip, but none of its entries is a KemMl ONNX graph. " +
            "Save models with mlContext.MultiTask().Model.Save (or mlContext.Model.Save) after fitting a multi-task trainer.");
    }
}
