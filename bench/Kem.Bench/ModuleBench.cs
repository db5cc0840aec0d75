using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Bench;

/// <summary>
/// Interaction modules alone (MODEL-SPEC §2–§4), forward + backward: X (B×T×n×d, requires grad) → X', then
/// X'.backward(G) with a fixed random G. Parameter gradients are reset to none before every iteration; the input's
/// gradient accumulates (as it does in the twin).
/// </summary>
internal static class ModuleBench
{
    /// <summary>The modules compared: name used in the rows → options.</summary>
    public static readonly (string Name, InteractionOptions Options)[] Kinds =
    [
        ("kem", new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 20, TopK = 3 }),
        ("skem", new InteractionOptions { Kind = InteractionKind.StableKem, EtfMode = EtfMode.TaskVertices, EtfInputProjection = true, MemorySlots = 20, TopK = 3 }),
        ("ca", new InteractionOptions { Kind = InteractionKind.CrossAttention }),
    ];

    public static void Run(Config c, Gpu gpu, Results results, Budget budget)
    {
        Console.WriteLine("# modules: the sequential design (MODEL-SPEC §5) is not implemented in src/ yet: no row.");
        foreach (var dtype in c.Dtypes)
        foreach (var tasks in c.TaskCounts)
        foreach (var tokens in c.TokenCounts)
        foreach (var (name, options) in Kinds)
        {
            var row = new Dictionary<string, object?>
            {
                ["bench"] = "module", ["kind"] = name, ["tasks"] = tasks, ["tokens"] = tokens, ["batch"] = c.Batch,
                ["width"] = c.Width, ["heads"] = c.Heads, ["slots"] = c.Slots, ["topk"] = c.TopK, ["dtype"] = dtype, ["device"] = gpu.Name,
            };
            if (budget.Exceeded) { results.Write(Skip(row, $"time budget of {budget.Seconds:F0} s used up")); continue; }
            try { Measure1(c, gpu, name, options with { MemorySlots = c.Slots, TopK = c.TopK }, tasks, tokens, dtype, row); }
            catch (Exception e) { row["status"] = "error"; row["reason"] = e.GetType().Name + ": " + e.Message.Split('\n')[0]; }
            results.Write(row);
        }
    }

    private static void Measure1(Config c, Gpu gpu, string name, InteractionOptions options, int tasks, int tokens, string dtype, Dictionary<string, object?> row)
    {
        var type = dtype == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        torch.manual_seed(1);
        using var module = InteractionFactory.Create("interaction", options, c.Width, c.Heads, tasks);
        module.to(gpu.Device);
        module.to(type);
        using var x = randn([c.Batch, tasks, tokens, c.Width], dtype: type, device: gpu.Device).requires_grad_(true);
        using var g = randn([c.Batch, tasks, tokens, c.Width], dtype: type, device: gpu.Device);

        void Iteration()
        {
            using var scope = NewDisposeScope();
            module.zero_grad();
            var y = module.call(x);
            y.backward([g]);
        }

        Measure.TimeInto(row, gpu, Iteration, c.ModuleSchedule);
        row["parameters"] = module.parameters().Sum(p => p.numel());
    }

    internal static Dictionary<string, object?> Skip(Dictionary<string, object?> row, string reason)
    {
        row["status"] = "skipped";
        row["reason"] = reason;
        return row;
    }
}
