using System.Text.RegularExpressions;
using Microsoft.ML.Kem.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Kem.Modeling;

/// <summary>What <see cref="BackboneWeights.Load(MultiTaskNetwork, string, bool, Action{string})"/> did.</summary>
/// <param name="Source">The weight file (or source name).</param>
/// <param name="Loaded">Backbone state names (ours, without the <c>backbone.</c> prefix) that received a tensor.</param>
/// <param name="Missing">
/// Backbone parameters and statistics the file did not provide (they keep their initial values); for TinySwin / SwinT only
/// the pre-trained part a1–a5 is expected in a file (<see cref="Backbone.IsPretrained"/>), so a6–a8 are not listed.
/// </param>
/// <param name="Unexpected">File keys with no counterpart in our backbone (ignored).</param>
/// <param name="Frozen">True when the backbone's parameters were frozen after loading.</param>
public sealed record BackboneWeightsReport(
    string Source, IReadOnlyList<string> Loaded, IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, bool Frozen);

/// <summary>
/// Pre-trained backbone weights from a safetensors file (MODEL-SPEC §1, backbone options: "Log missing/unexpected keys;
/// refuse to freeze a backbone that was not loaded"). File keys are mapped to our backbone's state names by
/// <see cref="MapKey"/>: our own names (what <see cref="Save"/> writes) load as they are, and the timm / Swin naming of a
/// ViT-style stack is translated (<c>patch_embed.proj</c> → <c>stem</c>, <c>blocks.j.attn.qkv</c> → split into
/// <c>blocks.j.attn.query</c> + <c>blocks.j.attn.keyValue</c>, <c>attn.proj</c> → <c>attn.output</c>, <c>mlp.fc1/fc2</c> →
/// <c>fc1/fc2</c>). For TinySwin / SwinT the official Swin names are translated (<see cref="SwinRules"/>): <c>patch_embed.{proj,norm}</c>,
/// <c>layers.i.blocks.j.*</c> and <c>layers.i.downsample.{norm,reduction}</c> (the merging at the end of official stage i, i.e. our
/// <c>merges.i</c> in front of stage i+1, with its 4C axis reordered), and <c>norm</c> (the LN after the last stage) fills the
/// last a6 LN. Keys our layouts have no place for (position tables, class token, classifier head) are reported as unexpected;
/// the fixed Swin buffers (<c>relative_position_index</c>, <c>attn_mask</c>) are recomputed here and skipped. Every copied
/// tensor is shape-checked; a mismatch names the key.
/// </summary>
public static class BackboneWeights
{
    /// <summary>State-dict prefix of the backbone inside <see cref="MultiTaskNetwork"/>.</summary>
    public const string Prefix = "backbone.";

    // Fixed (not learned) buffers: recomputed from the sizes, never expected in a file.
    private static readonly string[] FixedBuffers = ["positions", "relative_position_index", "attention_mask"];

    // Fixed buffers of the official Swin checkpoints (window geometry, shift mask at 224×224): recomputed, never copied.
    private static readonly Regex FixedSourceKeys = new(@"\.(relative_position_index|attn_mask)$");

    // Wrapper prefixes that checkpoints commonly put in front of the backbone's names.
    private static readonly string[] SourcePrefixes = ["module.", "model.", "backbone.", "encoder."];

    /// <summary>One row of the key-mapping table: a source-name pattern and the target name(s) it fills.</summary>
    private sealed record Rule(Regex Pattern, string Target, SourcePart Part = SourcePart.Whole);

    // Whole: copied as is; Query / KeyValue: rows [0, d) / [d, 3d) of a fused qkv; MergeOrder: a patch-merging tensor whose last
    // 4C axis is in the official order x0, x1, x2, x3 = (row, col) offsets (0,0), (1,0), (0,1), (1,1), ours (0,0), (0,1), (1,0), (1,1).
    private enum SourcePart { Whole, Query, KeyValue, MergeOrder }

    // MODEL-SPEC §1: timm ViT / Swin block names → our TransformerBlock names. Applied to TinyViT and ConvStem alike
    // (both end in the same global blocks and final LN); only TinyViT has a p×p patch embedding to receive patch_embed.proj.
    private static readonly Rule[] BlockRules =
    [
        new(new(@"^blocks\.(\d+)\.norm1\.(weight|bias)$"), "blocks.$1.norm1.$2"),
        new(new(@"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$"), "blocks.$1.attn.query.$2", SourcePart.Query),
        new(new(@"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$"), "blocks.$1.attn.keyValue.$2", SourcePart.KeyValue),
        new(new(@"^blocks\.(\d+)\.attn\.proj\.(weight|bias)$"), "blocks.$1.attn.output.$2"),
        new(new(@"^blocks\.(\d+)\.norm2\.(weight|bias)$"), "blocks.$1.norm2.$2"),
        new(new(@"^blocks\.(\d+)\.mlp\.fc1\.(weight|bias)$"), "blocks.$1.fc1.$2"),
        new(new(@"^blocks\.(\d+)\.mlp\.fc2\.(weight|bias)$"), "blocks.$1.fc2.$2"),
        new(new(@"^norm\.(weight|bias)$"), "norm.$1"),
    ];

    private static readonly Rule[] PatchEmbeddingRules = [new(new(@"^patch_embed\.proj\.(weight|bias)$"), "stem.$1")];

    /// <summary>MODEL-SPEC §1 `SwinT` name mapping: official Swin (microsoft/Swin-Transformer) names → our TinySwin / SwinT names.</summary>
    private static Rule[] SwinRules(MultiScaleOptions encoder)
    {
        const string Stages = "stem.scales.stages.$1.blocks.$2.";
        const string Block = @"^layers\.(\d+)\.blocks\.(\d+)\.";
        return
        [
            new(new(@"^patch_embed\.proj\.(weight|bias)$"), "stem.scales.patchEmbed.$1"),                       // a1
            new(new(@"^patch_embed\.norm\.(weight|bias)$"), "stem.scales.embedNorm.$1"),
            new(new(Block + @"norm1\.(weight|bias)$"), Stages + "norm1.$3"),                                       // a2–a5
            new(new(Block + @"attn\.qkv\.(weight|bias)$"), Stages + "attn.query.$3", SourcePart.Query),
            new(new(Block + @"attn\.qkv\.(weight|bias)$"), Stages + "attn.keyValue.$3", SourcePart.KeyValue),
            new(new(Block + @"attn\.proj\.(weight|bias)$"), Stages + "attn.output.$3"),
            new(new(Block + @"attn\.relative_position_bias_table$"), Stages + "relative_position_bias_table"),
            new(new(Block + @"norm2\.(weight|bias)$"), Stages + "norm2.$3"),
            new(new(Block + @"mlp\.fc1\.(weight|bias)$"), Stages + "fc1.$3"),
            new(new(Block + @"mlp\.fc2\.(weight|bias)$"), Stages + "fc2.$3"),
            // Official stage i ends with the merging into stage i+1: our merges.i (which runs before stages.(i+1)).
            new(new(@"^layers\.(\d+)\.downsample\.norm\.(weight|bias)$"), "stem.scales.merges.$1.norm.$2", SourcePart.MergeOrder),
            new(new(@"^layers\.(\d+)\.downsample\.reduction\.weight$"), "stem.scales.merges.$1.reduction.weight", SourcePart.MergeOrder),
            // The classifier's LN after the last stage is the last stage's a6 LN.
            new(new(@"^norm\.(weight|bias)$"), $"stem.scales.outputNorms.{encoder.Scales - 1 - encoder.FirstFusedScale}.$1"),
        ];
    }

    /// <summary>
    /// The key-mapping table: our state names (without <c>backbone.</c>) that file key <paramref name="sourceKey"/> fills in a
    /// <paramref name="kind"/> backbone; a fused qkv key fills two. Empty when the key has no place in our layout.
    /// <paramref name="ourKeys"/> are the backbone's own state names (identity matches win).
    /// </summary>
    /// <remarks>For TinySwin / SwinT the preset's sizes are assumed; use the overload with the network's options otherwise.</remarks>
    public static IReadOnlyList<string> MapKey(string sourceKey, BackboneKind kind, IReadOnlySet<string> ourKeys) =>
        Targets(sourceKey, Rules(kind, kind == BackboneKind.SwinT ? MultiScaleOptions.SwinT : MultiScaleOptions.TinySwin), ourKeys).Select(t => t.Target).ToArray();

    /// <summary>The mapping rules for a <paramref name="kind"/> backbone (<paramref name="encoder"/>: its stage sizes, for the Swin kinds).</summary>
    private static Rule[] Rules(BackboneKind kind, MultiScaleOptions encoder) => kind switch
    {
        BackboneKind.TinyViT => [.. PatchEmbeddingRules, .. BlockRules],
        BackboneKind.TinySwin or BackboneKind.SwinT => SwinRules(encoder),
        _ => BlockRules,
    };

    private static IEnumerable<(string Target, SourcePart Part)> Targets(string sourceKey, Rule[] rules, IReadOnlySet<string> ourKeys, bool rulesFirst = false)
    {
        foreach (string key in Unwrapped(sourceKey))
        {
            if (!rulesFirst && ourKeys.Contains(key)) return [(key, SourcePart.Whole)];
            var hits = rules.Where(r => r.Pattern.IsMatch(key)).Select(r => (r.Pattern.Replace(key, r.Target), r.Part)).ToArray();
            if (hits.Length > 0) return hits;
            if (ourKeys.Contains(key)) return [(key, SourcePart.Whole)];
        }
        return [];
    }

    /// <summary>The key itself, then the key with each known wrapper prefix removed (repeatedly).</summary>
    private static IEnumerable<string> Unwrapped(string key)
    {
        yield return key;
        for (bool stripped = true; stripped;)
        {
            stripped = false;
            foreach (string prefix in SourcePrefixes)
                if (key.StartsWith(prefix, StringComparison.Ordinal))
                {
                    key = key[prefix.Length..];
                    stripped = true;
                    yield return key;
                }
        }
    }

    /// <summary>
    /// Loads the backbone of <paramref name="network"/> from the safetensors file at <paramref name="path"/>, then freezes its
    /// parameters when <paramref name="freeze"/> (the paper's setting). Freezing is refused when any backbone parameter was
    /// not in the file. Missing and unexpected keys go to <paramref name="log"/>.
    /// </summary>
    public static BackboneWeightsReport Load(MultiTaskNetwork network, string path, bool freeze = false, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Load(network, SafeTensors.Read(path), path, freeze, log);
    }

    /// <summary>Loads from tensors already read; <paramref name="source"/> names them in messages.</summary>
    public static BackboneWeightsReport Load(
        MultiTaskNetwork network, IReadOnlyDictionary<string, SafeTensor> tensors, string source, bool freeze = false, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(tensors);
        var state = BackboneState(network);
        var ourKeys = state.Keys.ToHashSet(StringComparer.Ordinal);
        var loaded = new List<string>();
        var unexpected = new List<string>();
        var kind = network.Options.Backbone;
        var rules = Rules(kind, network.Options.ScaleEncoder);
        int skipped = 0;
        // An official Swin file (patch_embed.* / layers.*) names its last LN "norm", which is also our final LN's name: there the
        // official meaning wins. Files in our own names (Save) have neither prefix.
        bool official = kind is BackboneKind.TinySwin or BackboneKind.SwinT
            && tensors.Keys.Any(k => Unwrapped(k).Any(u => u.StartsWith("patch_embed.", StringComparison.Ordinal) || u.StartsWith("layers.", StringComparison.Ordinal)));

        using (torch.no_grad())
            foreach (var (key, tensor) in tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var targets = Targets(key, rules, ourKeys, rulesFirst: official).Where(t => state.ContainsKey(t.Target)).ToArray();
                if (targets.Length == 0)
                {
                    if (FixedSourceKeys.IsMatch(key)) skipped++;
                    else unexpected.Add(key);
                    continue;
                }
                foreach (var (target, part) in targets)
                {
                    Copy(state[target], tensor, part, key, target, source);
                    loaded.Add(target);
                }
            }

        var loadedSet = loaded.ToHashSet(StringComparer.Ordinal);
        var missing = state.Keys.Where(k => !FixedBuffers.Contains(LastName(k)) && !loadedSet.Contains(k) && Backbone.IsPretrained(kind, k))
            .Order(StringComparer.Ordinal).ToArray();
        log?.Invoke($"Backbone weights '{source}': loaded {loaded.Count} tensors, {missing.Length} missing, {unexpected.Count} unexpected" +
                    (skipped > 0 ? $", {skipped} fixed buffers skipped (recomputed)." : "."));
        if (missing.Length > 0) log?.Invoke($"  missing (kept at their initial values): {string.Join(", ", missing)}");
        if (unexpected.Count > 0) log?.Invoke($"  unexpected (ignored): {string.Join(", ", unexpected)}");

        if (freeze)
        {
            var missingParameters = network.named_parameters().Select(p => p.name).Where(n => n.StartsWith(Prefix, StringComparison.Ordinal))
                .Select(n => n[Prefix.Length..]).Where(n => Backbone.IsPretrained(kind, n) && !loadedSet.Contains(n)).ToArray();
            if (loaded.Count == 0 || missingParameters.Length > 0)
                throw new InvalidOperationException(
                    $"Refusing to freeze the backbone: '{source}' did not provide {(loaded.Count == 0 ? "any of its weights" : $"{missingParameters.Length} of its parameters ({string.Join(", ", missingParameters.Take(8))}{(missingParameters.Length > 8 ? ", …" : "")})")}. " +
                    "A frozen backbone must be fully pre-trained: fix the key names (see BackboneWeights.MapKey) or train without freezing.");
            Freeze(network);
        }
        return new BackboneWeightsReport(source, loaded, missing, unexpected, freeze);
    }

    /// <summary>Writes the backbone's learned state (our names, float32; BatchNorm counters int64) to <paramref name="path"/>.</summary>
    public static void Save(MultiTaskNetwork network, string path)
    {
        ArgumentNullException.ThrowIfNull(network);
        var tensors = new List<SafeTensor>();
        foreach (var (name, tensor) in BackboneState(network).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (FixedBuffers.Contains(LastName(name))) continue;
            using var cpu = tensor.detach().cpu();
            long[] shape = cpu.shape;
            tensors.Add(cpu.dtype == ScalarType.Int64
                ? SafeTensor.FromInt64(name, shape, cpu.data<long>().ToArray())
                : SafeTensor.FromFloat32(name, shape, cpu.to(ScalarType.Float32).data<float>().ToArray()));
        }
        SafeTensors.Write(path, tensors, new Dictionary<string, string>
        {
            ["format"] = "kemml-backbone",
            ["backbone"] = network.Options.Backbone.ToString(),
            ["width"] = network.Options.Width.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
    }

    /// <summary>
    /// Sets requires_grad = false on the backbone's pre-trained part (the whole backbone, or a1–a5 for the Swin kinds; use
    /// after loading; see <see cref="Load(MultiTaskNetwork, string, bool, Action{string})"/>).
    /// </summary>
    private static void Freeze(MultiTaskNetwork network)
    {
        foreach (var (name, parameter) in network.named_parameters())
            if (name.StartsWith(Prefix, StringComparison.Ordinal) && Backbone.IsPretrained(network.Options.Backbone, name[Prefix.Length..]))
                parameter.requires_grad = false;
    }

    /// <summary>The backbone's state tensors by our name without the prefix.</summary>
    private static Dictionary<string, Tensor> BackboneState(MultiTaskNetwork network) =>
        network.state_dict().Where(kv => kv.Key.StartsWith(Prefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[Prefix.Length..], kv => kv.Value, StringComparer.Ordinal);

    private static string LastName(string key) => key[(key.LastIndexOf('.') + 1)..];

    private static void Copy(Tensor target, SafeTensor source, SourcePart part, string key, string targetName, string file)
    {
        long[] shape = source.Shape;
        long width = part switch { SourcePart.Query => target.shape[0], SourcePart.KeyValue => target.shape[0] / 2, _ => 0 };   // d of this block
        if (part is SourcePart.Query or SourcePart.KeyValue)
        {
            // Fused qkv: rows [0, d) are the queries, rows [d, 3d) keys then values (our keyValue projection's order).
            if (shape.Length == 0 || shape[0] != 3L * width)
                throw new InvalidDataException($"'{file}': key '{key}' has shape [{string.Join(", ", shape)}]; a fused qkv for width {width} needs {3 * width} rows.");
        }
        if (target.dtype == ScalarType.Int64)
        {
            CheckShape(target.shape, shape, key, targetName, file);
            long[] ints = source.DType == SafeTensorDType.I64 ? source.ToInt64() : source.ToFloat32().Select(v => (long)v).ToArray();
            using var counts = torch.tensor(ints, shape);
            target.copy_(counts);
            return;
        }
        using var values = torch.tensor(source.ToFloat32(), shape);
        using var slice = part switch
        {
            SourcePart.Query => values.narrow(0, 0, width),
            SourcePart.KeyValue => values.narrow(0, width, 2L * width),
            SourcePart.MergeOrder when shape[^1] % 4 == 0 => values.reshape([.. shape[..^1], 4, shape[^1] / 4])     // …×4×C, official x0…x3
                .index_select(-2, torch.tensor(new long[] { 0, 2, 1, 3 })).reshape(shape),                         // → ours (swap x1, x2)
            _ => values.alias(),
        };
        CheckShape(target.shape, slice.shape, key, targetName, file);
        target.copy_(slice);
    }

    private static void CheckShape(long[] ours, long[] theirs, string key, string targetName, string file)
    {
        if (!ours.SequenceEqual(theirs))
            throw new InvalidDataException(
                $"'{file}': key '{key}' has shape [{string.Join(", ", theirs)}] but backbone.{targetName} is [{string.Join(", ", ours)}]. " +
                "The file was made for other sizes (Width, BackboneDepth, TokenStride, backbone kind); build the network with matching options.");
    }
}
