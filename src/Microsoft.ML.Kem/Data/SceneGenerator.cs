using System.Numerics;

namespace Microsoft.ML.Kem.Data;

/// <summary>
/// Deterministic ray-cast generator of indoor-like scenes with dense labels for every task (MODEL-SPEC §10: the
/// generated-scene dataset stands in for NYUD-v2). A box-shaped room (floor, four walls, ceiling) is seen by a pinhole
/// camera with a slightly random pose; 3–6 convex solids of six kinds stand on the floor. Surfaces get random colours
/// and checker/stripe/noise textures for every class alike, so the class must be read from shape. Shading is Lambertian
/// from one point light with hard shadows (shadow rays) plus an ambient term.
/// All labels come from the same primary-ray hit per pixel centre, so depth, normals, segmentation, boundaries,
/// saliency and parts agree with each other as they do in NYUD-v2.
/// Image i is a pure function of (<see cref="SceneOptions"/>, i): each image has its own random stream, so images can be
/// generated in parallel and in any order.
/// </summary>
public sealed class SceneGenerator
{
    /// <summary>Segmentation classes: floor, wall, and six object shapes.</summary>
    public const int ClassCount = 8;

    /// <summary>Class of floor pixels.</summary>
    public const int FloorClass = 0;

    /// <summary>Class of wall pixels; the ceiling counts as wall.</summary>
    public const int WallClass = 1;

    /// <summary>First object class; classes FirstObjectClass .. ClassCount − 1 are objects (salient).</summary>
    public const int FirstObjectClass = 2;

    /// <summary>Names of the segmentation classes, indexed by class.</summary>
    public static IReadOnlyList<string> ClassNames { get; } = ["floor", "wall", "sphere", "box", "cylinder", "cone", "capsule", "pyramid"];

    /// <summary>Part classes: background and the top, side and bottom of objects.</summary>
    public const int PartClassCount = 4;

    /// <summary>
    /// Names of the part classes, indexed by part. Rule, per object pixel with world normal n (y up) and relative height
    /// η = y / object height: top if n.y ≥ 0.7 (facing up within about 45°); otherwise bottom if η &lt; 0.25 or n.y ≤ −0.5;
    /// otherwise side. Floor and wall pixels are background.
    /// </summary>
    public static IReadOnlyList<string> PartNames { get; } = ["background", "top", "side", "bottom"];

    private const float TopNormalY = 0.7f, BottomNormalY = -0.5f, BottomHeightFraction = 0.25f;
    private const float ShadowBias = 1e-3f;
    private const int ObjectShapes = ClassCount - FirstObjectClass;

    /// <summary>Creates a generator; <paramref name="options"/> defaults to <see cref="SceneOptions"/>' defaults.</summary>
    public SceneGenerator(SceneOptions? options = null)
    {
        Options = options ?? new SceneOptions();
        Options.Validate();
    }

    /// <summary>The settings every image is generated with.</summary>
    public SceneOptions Options { get; }

    /// <summary>Generates image <paramref name="index"/> (≥ 0); the same options and index always give identical bytes.</summary>
    public SceneSample Generate(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        return Render(BuildScene(index), index);
    }

    /// <summary>Generates images firstIndex .. firstIndex + count − 1 in parallel; the array is in index order.</summary>
    public SceneSample[] GenerateMany(int count, int firstIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(firstIndex);
        var samples = new SceneSample[count];
        Parallel.For(0, count, i => samples[i] = Generate(firstIndex + i));
        return samples;
    }

    // ------------------------------------------------------------------ scene layout

    /// <summary>The room: x ∈ [−HalfWidth, HalfWidth], y ∈ [0, Height] (floor at 0), z ∈ [0, Depth] (camera near z = 0, looking to +z).</summary>
    private readonly record struct Room(float HalfWidth, float Depth, float Height)
    {
        public const int Floor = 0, Ceiling = 1;

        /// <summary>Where a ray from inside leaves the room, and through which surface (0 floor, 1 ceiling, 2/3 left/right, 4/5 front/back).</summary>
        public float Exit(Vector3 o, Vector3 d, out int surface)
        {
            float tx = d.X > 0 ? (HalfWidth - o.X) / d.X : d.X < 0 ? (-HalfWidth - o.X) / d.X : float.PositiveInfinity;
            float ty = d.Y > 0 ? (Height - o.Y) / d.Y : d.Y < 0 ? -o.Y / d.Y : float.PositiveInfinity;
            float tz = d.Z > 0 ? (Depth - o.Z) / d.Z : d.Z < 0 ? -o.Z / d.Z : float.PositiveInfinity;
            if (ty <= tx && ty <= tz)
            {
                surface = d.Y < 0 ? Floor : Ceiling;
                return ty;
            }
            if (tx <= tz)
            {
                surface = d.X < 0 ? 2 : 3;
                return tx;
            }
            surface = d.Z < 0 ? 4 : 5;
            return tz;
        }

        /// <summary>Inward unit normal of a surface.</summary>
        public static Vector3 Normal(int surface) => surface switch
        {
            Floor => Vector3.UnitY,
            Ceiling => -Vector3.UnitY,
            2 => Vector3.UnitX,
            3 => -Vector3.UnitX,
            4 => Vector3.UnitZ,
            _ => -Vector3.UnitZ,
        };

        /// <summary>Texture point on a surface: the world point with the surface's constant coordinate set to 0.</summary>
        public static Vector3 TexturePoint(int surface, Vector3 p) => surface switch
        {
            Floor or Ceiling => p with { Y = 0 },
            2 or 3 => p with { X = 0 },
            _ => p with { Z = 0 },
        };
    }

    /// <summary>Pinhole camera: position and orthonormal axes (right, down, forward) in world coordinates.</summary>
    private readonly record struct Camera(Vector3 Position, Vector3 Right, Vector3 Down, Vector3 Forward, float Focal);

    private sealed record Scene(
        Room Room, Camera Camera, Vector3 Light, float LightPower, float Exposure,
        SceneMaterial FloorMaterial, SceneMaterial WallMaterial, SceneMaterial CeilingMaterial, ScenePrimitive[] Objects);

    private Scene BuildScene(int index)
    {
        var random = SceneRandom.ForImage(Options.Seed, index);
        var room = new Room(random.Uniform(2f, 3f), random.Uniform(4.5f, 7.5f), random.Uniform(2.6f, 3.2f));

        // Camera near the front wall, at eye height, looking into the room and slightly down.
        var position = new Vector3(random.Uniform(-0.3f, 0.3f) * room.HalfWidth, random.Uniform(1.1f, 1.7f), random.Uniform(0.2f, 0.6f));
        float yaw = Radians(random.Uniform(-12f, 12f)), pitch = Radians(random.Uniform(8f, 24f)), roll = Radians(random.Uniform(-3f, 3f));
        var forward = new Vector3(MathF.Sin(yaw) * MathF.Cos(pitch), -MathF.Sin(pitch), MathF.Cos(yaw) * MathF.Cos(pitch));
        var levelRight = new Vector3(MathF.Cos(yaw), 0, -MathF.Sin(yaw));
        Vector3 levelDown = Vector3.Cross(levelRight, forward);
        Vector3 right = MathF.Cos(roll) * levelRight + MathF.Sin(roll) * levelDown;
        Vector3 down = -MathF.Sin(roll) * levelRight + MathF.Cos(roll) * levelDown;
        float tanHalfFov = MathF.Tan(Radians(Options.VerticalFieldOfViewDegrees) / 2);
        var camera = new Camera(position, right, down, forward, Options.Height / 2f / tanHalfFov);

        var light = new Vector3(random.Uniform(-0.6f, 0.6f) * room.HalfWidth, room.Height - random.Uniform(0.15f, 0.5f), random.Uniform(0.3f, 0.8f) * room.Depth);
        float lightPower = random.Uniform(1.3f, 1.9f), exposure = random.Uniform(0.85f, 1.15f);
        SceneMaterial floor = SceneMaterial.Random(ref random, 1f, 4f);
        SceneMaterial walls = SceneMaterial.Random(ref random, 1f, 5f);
        SceneMaterial ceiling = SceneMaterial.Random(ref random, 0.5f, 2f);

        int count = Options.MinObjects + random.NextInt(Options.MaxObjects - Options.MinObjects + 1);
        float halfWidthTan = tanHalfFov * Options.Width / Options.Height;
        var objects = new List<ScenePrimitive>(count);
        var footprints = new List<(float X, float Z, float R)>(count);
        for (int i = 0; i < count; i++)
            for (int attempt = 0; attempt < 40; attempt++)
            {
                int classId = FirstObjectClass + random.NextInt(ObjectShapes);
                float footprint = random.Uniform(0.2f, 0.55f);
                // A floor point in front of the camera, inside the horizontal field of view.
                float distance = random.Uniform(1.3f, room.Depth - position.Z - 0.3f);
                float lateral = random.Uniform(-0.8f, 0.8f) * distance * halfWidthTan;
                float x = position.X + distance * MathF.Sin(yaw) + lateral * MathF.Cos(yaw);
                float z = position.Z + distance * MathF.Cos(yaw) - lateral * MathF.Sin(yaw);
                if (MathF.Abs(x) > room.HalfWidth - footprint - 0.05f || z < position.Z + 0.9f + footprint || z > room.Depth - footprint - 0.05f
                    || footprints.Exists(f => (f.X - x) * (f.X - x) + (f.Z - z) * (f.Z - z) < (f.R + footprint + 0.08f) * (f.R + footprint + 0.08f)))
                    continue;
                footprints.Add((x, z, footprint));
                objects.Add(CreateObject(classId, new Vector3(x, 0, z), footprint, ref random));
                break;
            }
        return new Scene(room, camera, light, lightPower, exposure, floor, walls, ceiling, [.. objects]);
    }

    /// <summary>One solid of the given class whose footprint fits in a circle of radius <paramref name="r"/>.</summary>
    private static ScenePrimitive CreateObject(int classId, Vector3 basePoint, float r, ref SceneRandom random)
    {
        float yaw = random.Uniform(0f, 2f * MathF.PI);
        SceneMaterial material = SceneMaterial.Random(ref random, 3f, 10f);
        return (classId - FirstObjectClass) switch
        {
            0 => new SpherePrimitive(classId, basePoint, yaw, r, material),
            1 => ConvexPolyhedron.Box(classId, basePoint, yaw, r * random.Uniform(0.45f, 0.7f), r * random.Uniform(0.45f, 0.7f), random.Uniform(0.25f, 1f), material),
            2 => new CylinderPrimitive(classId, basePoint, yaw, r * random.Uniform(0.55f, 1f), random.Uniform(0.3f, 1.2f), material),
            3 => new ConePrimitive(classId, basePoint, yaw, r * random.Uniform(0.7f, 1f), random.Uniform(0.5f, 1.3f), material),
            4 => Capsule(classId, basePoint, yaw, r, r * random.Uniform(0.3f, 0.5f), material),
            _ => ConvexPolyhedron.Pyramid(classId, basePoint, yaw, r * random.Uniform(0.5f, 0.7f), random.Uniform(0.4f, 1.2f), material),
        };

        static CapsulePrimitive Capsule(int classId, Vector3 basePoint, float yaw, float r, float radius, SceneMaterial material) =>
            new(classId, basePoint, yaw, radius, r - radius, material);
    }

    private static float Radians(float degrees) => degrees * (MathF.PI / 180f);

    // ------------------------------------------------------------------ rendering

    private SceneSample Render(Scene scene, int index)
    {
        int width = Options.Width, height = Options.Height, pixels = width * height;
        var rgb = new byte[3 * pixels];
        var segmentation = new float[pixels];
        var depth = new float[pixels];
        var normals = new float[3 * pixels];
        var saliency = new float[pixels];
        var parts = new float[pixels];
        var instances = new int[pixels];
        Camera camera = scene.Camera;
        ScenePrimitive[] objects = scene.Objects;
        float ambient = Options.Ambient;

        for (int v = 0; v < height; v++)
            for (int u = 0; u < width; u++)
            {
                int i = v * width + u;
                // Ray through the pixel centre: camera direction ((u + ½ − cx)/f, (v + ½ − cy)/f, 1), rotated to world.
                float cu = (u + 0.5f - width / 2f) / camera.Focal, cv = (v + 0.5f - height / 2f) / camera.Focal;
                Vector3 direction = Vector3.Normalize(cu * camera.Right + cv * camera.Down + camera.Forward);

                float t = scene.Room.Exit(camera.Position, direction, out int surface);
                int hitObject = -1;
                Vector3 normal = default, local = default;
                for (int k = 0; k < objects.Length; k++)
                    if (objects[k].Intersect(camera.Position, direction, 1e-4f, t, out float tk, out Vector3 nk, out Vector3 pk))
                        (t, hitObject, normal, local) = (tk, k, nk, pk);

                Vector3 point = camera.Position + t * direction;
                Vector3 albedo;
                if (hitObject >= 0)
                {
                    ScenePrimitive solid = objects[hitObject];
                    segmentation[i] = solid.ClassId;
                    instances[i] = 6 + hitObject; // after the six room surfaces
                    saliency[i] = 1f;
                    parts[i] = PartOf(normal.Y, local.Y / solid.Height);
                    albedo = solid.Material.Albedo(local);
                }
                else
                {
                    normal = Room.Normal(surface);
                    segmentation[i] = surface == Room.Floor ? FloorClass : WallClass;
                    instances[i] = surface;
                    SceneMaterial material = surface == Room.Floor ? scene.FloorMaterial : surface == Room.Ceiling ? scene.CeilingMaterial : scene.WallMaterial;
                    albedo = material.Albedo(Room.TexturePoint(surface, point));
                }

                depth[i] = t * Vector3.Dot(direction, camera.Forward);
                normals[i] = Vector3.Dot(normal, camera.Right);
                normals[pixels + i] = Vector3.Dot(normal, camera.Down);
                normals[2 * pixels + i] = Vector3.Dot(normal, camera.Forward);

                Vector3 color = scene.Exposure * albedo * (ambient + (1 - ambient) * DirectLight(scene, point, normal, hitObject));
                rgb[3 * i] = ToByte(color.X);
                rgb[3 * i + 1] = ToByte(color.Y);
                rgb[3 * i + 2] = ToByte(color.Z);
            }

        float[] boundaries = Boundaries(instances, depth, width, height, Options.DepthEdgeRatio);
        return new SceneSample(index, width, height, camera.Focal, rgb, segmentation, depth, normals, boundaries, saliency, parts);
    }

    /// <summary>Lambert term n·l times the light's falloff, 0 when the point faces away or a shadow ray hits another object.</summary>
    private static float DirectLight(Scene scene, Vector3 point, Vector3 normal, int hitObject)
    {
        Vector3 toLight = scene.Light - point;
        float distanceSquared = toLight.LengthSquared(), distance = MathF.Sqrt(distanceSquared);
        Vector3 l = toLight / distance;
        float lambert = Vector3.Dot(normal, l);
        if (lambert <= 0)
            return 0;
        // The room is convex and holds the light, so only objects cast shadows; a convex object cannot shadow itself here.
        Vector3 origin = point + ShadowBias * normal;
        ScenePrimitive[] objects = scene.Objects;
        for (int k = 0; k < objects.Length; k++)
            if (k != hitObject && objects[k].Intersect(origin, l, ShadowBias, distance, out _, out _, out _))
                return 0;
        return lambert * scene.LightPower / (1f + 0.08f * distanceSquared);
    }

    private static float PartOf(float normalY, float heightFraction)
    {
        if (normalY >= TopNormalY)
            return 1f;
        return heightFraction < BottomHeightFraction || normalY <= BottomNormalY ? 3f : 2f;
    }

    /// <summary>Linear intensity → 8-bit with gamma 2 (square root), clamped.</summary>
    private static byte ToByte(float linear) => (byte)(255f * MathF.Sqrt(Math.Clamp(linear, 0f, 1f)) + 0.5f);

    /// <summary>1 where a 4-neighbour belongs to another instance (hence also where the class changes) or its depth differs by more than ratio × the nearer depth.</summary>
    private static float[] Boundaries(int[] instances, float[] depth, int width, int height, float ratio)
    {
        var boundaries = new float[instances.Length];
        for (int v = 0; v < height; v++)
            for (int u = 0; u < width; u++)
            {
                int i = v * width + u;
                if ((u > 0 && Differs(i, i - 1)) || (u + 1 < width && Differs(i, i + 1))
                    || (v > 0 && Differs(i, i - width)) || (v + 1 < height && Differs(i, i + width)))
                    boundaries[i] = 1f;
            }
        return boundaries;

        bool Differs(int a, int b) =>
            instances[a] != instances[b] || MathF.Abs(depth[a] - depth[b]) > ratio * MathF.Min(depth[a], depth[b]);
    }
}
