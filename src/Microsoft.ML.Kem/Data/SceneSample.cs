namespace Microsoft.ML.Kem.Data;

/// <summary>
/// One generated image and its dense labels, all row-major H×W (pixel (u, v) at v·W + u), all from the same ray hits.
/// Camera coordinates: x right, y down, z forward (depth axis).
/// </summary>
/// <param name="Index">Image index within the dataset.</param>
/// <param name="Width">Pixels per row.</param>
/// <param name="Height">Rows.</param>
/// <param name="FocalLength">Pinhole focal length in pixels (fx = fy; principal point at the image centre).</param>
/// <param name="Rgb">H×W×3 interleaved 8-bit colour.</param>
/// <param name="Segmentation">H×W class index, 0 .. <see cref="SceneGenerator.ClassCount"/> − 1 (see <see cref="SceneGenerator.ClassNames"/>).</param>
/// <param name="Depth">H×W metric depth along the camera z axis, metres, &gt; 0 everywhere.</param>
/// <param name="Normals">3×H×W planes (x, y, z) of unit surface normals in camera coordinates, facing the camera.</param>
/// <param name="Boundaries">H×W, 1 where the instance or class changes to a 4-neighbour or the depth jumps, else 0.</param>
/// <param name="Saliency">H×W, 1 on object pixels (class ≥ 2), 0 on floor and walls.</param>
/// <param name="Parts">H×W part index, 0 .. <see cref="SceneGenerator.PartClassCount"/> − 1 (see <see cref="SceneGenerator.PartNames"/>).</param>
public sealed record SceneSample(
    int Index, int Width, int Height, float FocalLength,
    byte[] Rgb, float[] Segmentation, float[] Depth, float[] Normals, float[] Boundaries, float[] Saliency, float[] Parts);
