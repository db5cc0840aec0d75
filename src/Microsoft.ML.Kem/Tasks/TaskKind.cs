namespace Microsoft.ML.Kem.Tasks;

/// <summary>The dense prediction tasks KemMl knows (MODEL-SPEC §8).</summary>
public enum TaskKind
{
    /// <summary>Per-pixel class index; label 255 = ignore. Head: C logits. Loss: cross-entropy.</summary>
    SemanticSegmentation,
    /// <summary>Human/object parts: per-pixel class index like segmentation (background = 0); 255 = ignore.</summary>
    Parts,
    /// <summary>Metric depth in metres; label ≤ 0 or 255 = invalid. Head: 1 channel, ReLU. Loss: L1.</summary>
    Depth,
    /// <summary>Foreground saliency; label in {0,1} (&gt; 0.5 is salient), 255 = ignore. Head: 1 logit. Loss: class-balanced BCE.</summary>
    Saliency,
    /// <summary>Unit surface normals, 3 channels; a zero-length label vector = invalid. Loss: L1 on L2-normalised prediction.</summary>
    Normals,
    /// <summary>Boundaries; label in {0,1}, 255 = ignore. Head: 1 logit. Loss: weighted BCE (positive 0.95).</summary>
    Boundaries,
}
