using System.Diagnostics;
using System.Numerics;
using Microsoft.ML.Kem.Data;

namespace Kem.Tests.Data;

[TestClass]
public sealed class SceneGeneratorTests
{
    private static readonly SceneGenerator Generator = new(new SceneOptions { Seed = 11, Width = 96, Height = 72 });
    private static readonly Lazy<SceneSample[]> Samples = new(() => Generator.GenerateMany(12));

    /// <summary>Camera-frame direction of pixel (u, v)'s centre, z = 1.</summary>
    private static Vector3 PixelRay(SceneSample s, int u, int v) =>
        new((u + 0.5f - s.Width / 2f) / s.FocalLength, (v + 0.5f - s.Height / 2f) / s.FocalLength, 1f);

    private static Vector3 NormalAt(SceneSample s, int i)
    {
        int pixels = s.Width * s.Height;
        return new Vector3(s.Normals[i], s.Normals[pixels + i], s.Normals[2 * pixels + i]);
    }

    [TestMethod]
    public void Same_seed_and_index_give_identical_bytes()
    {
        var options = new SceneOptions { Seed = 5, Width = 40, Height = 32 };
        SceneSample first = new SceneGenerator(options).Generate(3);
        SceneSample second = new SceneGenerator(options).Generate(3);
        CollectionAssert.AreEqual(first.Rgb, second.Rgb);
        CollectionAssert.AreEqual(first.Segmentation, second.Segmentation);
        CollectionAssert.AreEqual(first.Depth, second.Depth);
        CollectionAssert.AreEqual(first.Normals, second.Normals);
        CollectionAssert.AreEqual(first.Boundaries, second.Boundaries);
        CollectionAssert.AreEqual(first.Parts, second.Parts);
    }

    [TestMethod]
    public void Parallel_generation_matches_one_by_one_generation_in_index_order()
    {
        var generator = new SceneGenerator(new SceneOptions { Seed = 9, Width = 32, Height = 24 });
        SceneSample[] many = generator.GenerateMany(6, firstIndex: 10);
        for (int k = 0; k < many.Length; k++)
        {
            Assert.AreEqual(10 + k, many[k].Index);
            CollectionAssert.AreEqual(generator.Generate(10 + k).Rgb, many[k].Rgb);
        }
    }

    [TestMethod]
    public void Different_seed_or_index_gives_a_different_image()
    {
        var options = new SceneOptions { Seed = 5, Width = 40, Height = 32 };
        byte[] image = new SceneGenerator(options).Generate(0).Rgb;
        CollectionAssert.AreNotEqual(image, new SceneGenerator(options with { Seed = 6 }).Generate(0).Rgb);
        CollectionAssert.AreNotEqual(image, new SceneGenerator(options).Generate(1).Rgb);
    }

    [TestMethod]
    public void Every_class_and_part_appears_over_fifty_images()
    {
        var generator = new SceneGenerator(new SceneOptions { Seed = 1, Width = 64, Height = 64 });
        var classes = new HashSet<float>();
        var parts = new HashSet<float>();
        foreach (SceneSample s in generator.GenerateMany(50))
        {
            classes.UnionWith(s.Segmentation);
            parts.UnionWith(s.Parts);
        }
        CollectionAssert.AreEquivalent(Enumerable.Range(0, SceneGenerator.ClassCount).Select(c => (float)c).ToArray(), classes.ToArray());
        CollectionAssert.AreEquivalent(Enumerable.Range(0, SceneGenerator.PartClassCount).Select(c => (float)c).ToArray(), parts.ToArray());
        Assert.HasCount(SceneGenerator.ClassCount, SceneGenerator.ClassNames);
        Assert.HasCount(SceneGenerator.PartClassCount, SceneGenerator.PartNames);
    }

    [TestMethod]
    public void Every_map_has_the_size_the_options_ask_for()
    {
        SceneSample s = Samples.Value[0];
        int pixels = 96 * 72;
        Assert.AreEqual(96, s.Width);
        Assert.AreEqual(72, s.Height);
        Assert.HasCount(3 * pixels, s.Rgb);
        Assert.HasCount(3 * pixels, s.Normals);
        foreach (float[] map in new[] { s.Segmentation, s.Depth, s.Boundaries, s.Saliency, s.Parts })
            Assert.HasCount(pixels, map);
    }

    [TestMethod]
    public void Depth_is_positive_and_finite_everywhere()
    {
        foreach (SceneSample s in Samples.Value)
            foreach (float d in s.Depth)
                Assert.IsTrue(float.IsFinite(d) && d > 0 && d < 20, $"depth {d} in image {s.Index}");
    }

    [TestMethod]
    public void Normals_are_unit_length_and_face_the_camera()
    {
        foreach (SceneSample s in Samples.Value)
            for (int v = 0; v < s.Height; v++)
                for (int u = 0; u < s.Width; u++)
                {
                    Vector3 n = NormalAt(s, v * s.Width + u);
                    Assert.AreEqual(1f, n.Length(), 1e-4f);
                    // ≤ 0 up to rounding: silhouette pixels hit the surface at a grazing angle.
                    Assert.IsLessThan(1e-4f, Vector3.Dot(n, PixelRay(s, u, v)), $"normal faces away at ({u}, {v}) of image {s.Index}");
                }
    }

    [TestMethod]
    public void Floor_pixels_back_project_onto_one_plane_with_the_floor_normal()
    {
        // Depth, normals and segmentation must describe the same geometry: the 3-D points P = depth · ray of all floor
        // pixels share one normal n and one plane offset n·P (minus the camera height).
        foreach (SceneSample s in Samples.Value)
        {
            int first = Array.IndexOf(s.Segmentation, (float)SceneGenerator.FloorClass);
            Vector3 floorNormal = NormalAt(s, first);
            float? offset = null;
            for (int i = 0; i < s.Width * s.Height; i++)
            {
                if (s.Segmentation[i] != SceneGenerator.FloorClass)
                    continue;
                Assert.IsLessThan(1e-4f, Vector3.Distance(floorNormal, NormalAt(s, i)));
                float planeOffset = Vector3.Dot(floorNormal, s.Depth[i] * PixelRay(s, i % s.Width, i / s.Width));
                offset ??= planeOffset;
                Assert.AreEqual(offset.Value, planeOffset, 1e-3f, $"image {s.Index}, pixel {i}");
            }
            Assert.IsTrue(offset < -1f && offset > -1.8f, $"camera height {-offset} m should be 1.1..1.7 m");
        }
    }

    [TestMethod]
    public void Saliency_is_exactly_the_object_pixels_and_parts_are_background_elsewhere()
    {
        foreach (SceneSample s in Samples.Value)
            for (int i = 0; i < s.Segmentation.Length; i++)
            {
                bool isObject = s.Segmentation[i] >= SceneGenerator.FirstObjectClass;
                Assert.AreEqual(isObject ? 1f : 0f, s.Saliency[i]);
                Assert.AreEqual(isObject, s.Parts[i] != 0f);
            }
    }

    [TestMethod]
    public void Boundaries_mark_every_class_change_and_nothing_inside_flat_regions()
    {
        foreach (SceneSample s in Samples.Value)
        {
            Assert.IsGreaterThan(0f, s.Boundaries.Sum());
            for (int v = 0; v < s.Height; v++)
                for (int u = 0; u + 1 < s.Width; u++)
                {
                    int i = v * s.Width + u;
                    if (s.Segmentation[i] != s.Segmentation[i + 1])
                        Assert.IsTrue(s.Boundaries[i] == 1f && s.Boundaries[i + 1] == 1f, $"class change at ({u}, {v}) not marked");
                }
            // Boundaries are a thin set: far less than half of the image.
            Assert.IsLessThan(0.4f * s.Boundaries.Length, s.Boundaries.Sum());
        }
    }

    [TestMethod]
    public void Shading_varies_inside_one_class()
    {
        // Colour is not the class: floor pixels alone cover a wide range of intensities.
        SceneSample s = Samples.Value[1];
        var floorIntensity = Enumerable.Range(0, s.Segmentation.Length).Where(i => s.Segmentation[i] == 0f)
            .Select(i => s.Rgb[3 * i] + s.Rgb[3 * i + 1] + s.Rgb[3 * i + 2]).ToArray();
        Assert.IsGreaterThan(60, floorIntensity.Max() - floorIntensity.Min());
    }

    [TestMethod]
    public void Hundred_images_generate_within_a_soft_time_bound()
    {
        var generator = new SceneGenerator(new SceneOptions { Seed = 2 });
        var clock = Stopwatch.StartNew();
        generator.GenerateMany(100);
        Assert.IsLessThan(10.0, clock.Elapsed.TotalSeconds, "100 images of 128×128 should take well under 10 s even in Debug");
    }

    [TestMethod]
    public void Invalid_options_are_refused_with_a_message_naming_the_setting()
    {
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new SceneGenerator(new SceneOptions { MinObjects = 5, MaxObjects = 2 }));
        Assert.Contains("MaxObjects", error.Message);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new SceneGenerator(new SceneOptions { Width = 4 }));
    }
}
