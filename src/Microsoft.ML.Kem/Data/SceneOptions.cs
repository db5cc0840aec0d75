namespace Microsoft.ML.Kem.Data;

/// <summary>Settings of <see cref="SceneGenerator"/>. Everything random is drawn per image from (<see cref="Seed"/>, image index).</summary>
public sealed record SceneOptions
{
    /// <summary>Image width in pixels. Default 128.</summary>
    public int Width { get; init; } = 128;

    /// <summary>Image height in pixels. Default 128.</summary>
    public int Height { get; init; } = 128;

    /// <summary>Dataset seed; image i of a dataset is a pure function of (Seed, i, the other options).</summary>
    public long Seed { get; init; }

    /// <summary>Fewest objects placed on the floor. Default 3.</summary>
    public int MinObjects { get; init; } = 3;

    /// <summary>Most objects placed on the floor (fewer when the floor is crowded). Default 6.</summary>
    public int MaxObjects { get; init; } = 6;

    /// <summary>Vertical field of view of the pinhole camera, degrees. Default 55 (NYUD's Kinect: about 45 × 58).</summary>
    public float VerticalFieldOfViewDegrees { get; init; } = 55f;

    /// <summary>Ambient share of the lighting, 0..1: what a surface in full shadow still receives. Default 0.2.</summary>
    public float Ambient { get; init; } = 0.2f;

    /// <summary>
    /// A pixel is a boundary when a 4-neighbour's depth differs by more than this fraction of the nearer depth
    /// (in addition to instance or class changes). Default 0.1.
    /// </summary>
    public float DepthEdgeRatio { get; init; } = 0.1f;

    /// <summary>Throws with a message that says what to change when a setting is out of range.</summary>
    public void Validate()
    {
        if (Width < 8 || Height < 8 || (long)Width * Height > 16_777_216)
            throw new ArgumentOutOfRangeException(nameof(Width), $"Scene size {Width}×{Height}: each side must be ≥ 8 and the image at most 16 M pixels.");
        if (MinObjects < 0 || MaxObjects < MinObjects || MaxObjects > 32)
            throw new ArgumentOutOfRangeException(nameof(MaxObjects), $"Objects {MinObjects}..{MaxObjects}: need 0 ≤ MinObjects ≤ MaxObjects ≤ 32.");
        if (!(VerticalFieldOfViewDegrees >= 10f && VerticalFieldOfViewDegrees <= 120f))
            throw new ArgumentOutOfRangeException(nameof(VerticalFieldOfViewDegrees), VerticalFieldOfViewDegrees, "Use a vertical field of view between 10 and 120 degrees.");
        if (!(Ambient >= 0f && Ambient <= 1f))
            throw new ArgumentOutOfRangeException(nameof(Ambient), Ambient, "Ambient must be in [0, 1].");
        if (!(DepthEdgeRatio > 0f))
            throw new ArgumentOutOfRangeException(nameof(DepthEdgeRatio), DepthEdgeRatio, "DepthEdgeRatio must be positive (for example 0.1).");
    }
}
