using System.Numerics;

namespace Microsoft.ML.Kem.Data;

/// <summary>
/// A solid standing on the floor, described in its own frame: origin at the centre of its footprint on the floor,
/// y up, turned by a yaw angle about the vertical. Every shape is convex, so a ray enters it at most once and a
/// surface point never shadows its own object when it faces the light.
/// </summary>
internal abstract class ScenePrimitive
{
    private readonly Vector3 basePoint;
    private readonly float cos, sin;
    private readonly Vector3 boundCenter;
    private readonly float boundRadiusSquared;

    protected ScenePrimitive(int classId, Vector3 basePoint, float yaw, float footprintRadius, float height, SceneMaterial material)
    {
        ClassId = classId;
        Height = height;
        Material = material;
        this.basePoint = basePoint;
        cos = MathF.Cos(yaw);
        sin = MathF.Sin(yaw);
        boundCenter = basePoint + new Vector3(0, height / 2, 0);
        boundRadiusSquared = footprintRadius * footprintRadius + height * height / 4 + 1e-4f;
    }

    /// <summary>Segmentation class (2 .. 7).</summary>
    public int ClassId { get; }

    /// <summary>Height of the top above the floor, metres.</summary>
    public float Height { get; }

    /// <summary>Surface texture, evaluated in the object's frame.</summary>
    public SceneMaterial Material { get; }

    /// <summary>
    /// Where the world ray <paramref name="origin"/> + t·<paramref name="direction"/> (unit) first enters the solid with
    /// <paramref name="tMin"/> &lt; t &lt; <paramref name="tMax"/>: the distance, the outward unit normal (world) and the hit in the object's frame.
    /// </summary>
    public bool Intersect(Vector3 origin, Vector3 direction, float tMin, float tMax, out float t, out Vector3 normal, out Vector3 local)
    {
        t = 0;
        normal = local = default;
        // Bounding sphere first: most rays miss most objects.
        Vector3 oc = origin - boundCenter;
        float b = Vector3.Dot(oc, direction), c = Vector3.Dot(oc, oc) - boundRadiusSquared;
        float discriminant = b * b - c;
        if (discriminant < 0 || (c > 0 && b > 0) || -b - MathF.Sqrt(discriminant) >= tMax)
            return false;

        Vector3 o = ToLocal(origin - basePoint), d = ToLocal(direction);
        if (!IntersectLocal(o, d, out t, out Vector3 localNormal) || t <= tMin || t >= tMax)
            return false;
        local = o + t * d;
        normal = Vector3.Normalize(ToWorld(localNormal)); // renormalised: (p − c)/r drifts from unit length by float rounding
        return true;
    }

    /// <summary>Entry distance and outward unit normal (object frame) of a ray given in the object frame; false on a miss.</summary>
    protected abstract bool IntersectLocal(Vector3 o, Vector3 d, out float t, out Vector3 normal);

    private Vector3 ToLocal(Vector3 v) => new(cos * v.X - sin * v.Z, v.Y, sin * v.X + cos * v.Z);

    private Vector3 ToWorld(Vector3 v) => new(cos * v.X + sin * v.Z, v.Y, -sin * v.X + cos * v.Z);

    /// <summary>Roots t0 ≤ t1 of a·t² + 2·halfB·t + c = 0; false when there are none. |a| is kept away from 0 (ray parallel to the axis).</summary>
    protected static bool SolveQuadratic(float a, float halfB, float c, out float t0, out float t1)
    {
        if (MathF.Abs(a) < 1e-7f)
            a = a < 0 ? -1e-7f : 1e-7f;
        float discriminant = halfB * halfB - a * c;
        t0 = t1 = 0;
        if (discriminant < 0)
            return false;
        float root = MathF.Sqrt(discriminant);
        float r0 = (-halfB - root) / a, r1 = (-halfB + root) / a;
        (t0, t1) = r0 <= r1 ? (r0, r1) : (r1, r0);
        return true;
    }

    /// <summary>The interval where the ray is within floor ≤ y ≤ top; false if it never is.</summary>
    protected static bool HeightSlab(float oy, float dy, float top, out float near, out float far)
    {
        near = float.NegativeInfinity;
        far = float.PositiveInfinity;
        if (MathF.Abs(dy) < 1e-9f)
            return oy >= 0 && oy <= top;
        float a = -oy / dy, b = (top - oy) / dy;
        (near, far) = a <= b ? (a, b) : (b, a);
        return true;
    }
}

/// <summary>Sphere of radius r resting on the floor: centre (0, r, 0).</summary>
internal sealed class SpherePrimitive(int classId, Vector3 basePoint, float yaw, float radius, SceneMaterial material)
    : ScenePrimitive(classId, basePoint, yaw, radius, 2 * radius, material)
{
    private readonly float radius = radius;

    protected override bool IntersectLocal(Vector3 o, Vector3 d, out float t, out Vector3 normal)
    {
        Vector3 oc = o - new Vector3(0, radius, 0);
        normal = default;
        if (!SolveQuadratic(1f, Vector3.Dot(oc, d), Vector3.Dot(oc, oc) - radius * radius, out t, out _))
            return false;
        normal = (oc + t * d) / radius;
        return true;
    }
}

/// <summary>Vertical cylinder of radius r and height h: x² + z² ≤ r², 0 ≤ y ≤ h.</summary>
internal sealed class CylinderPrimitive(int classId, Vector3 basePoint, float yaw, float radius, float height, SceneMaterial material)
    : ScenePrimitive(classId, basePoint, yaw, radius, height, material)
{
    private readonly float radius = radius;

    protected override bool IntersectLocal(Vector3 o, Vector3 d, out float t, out Vector3 normal)
    {
        t = 0;
        normal = default;
        if (!SolveQuadratic(d.X * d.X + d.Z * d.Z, o.X * d.X + o.Z * d.Z, o.X * o.X + o.Z * o.Z - radius * radius, out float t0, out float t1)
            || !HeightSlab(o.Y, d.Y, Height, out float near, out float far))
            return false;
        t = MathF.Max(t0, near);
        if (t > MathF.Min(t1, far))
            return false;
        Vector3 p = o + t * d;
        normal = t0 >= near ? new Vector3(p.X / radius, 0, p.Z / radius) : new Vector3(0, d.Y < 0 ? 1 : -1, 0);
        return true;
    }
}

/// <summary>Upright cone, base radius r on the floor, apex at (0, h, 0): x² + z² ≤ (r/h)²·(h − y)², 0 ≤ y ≤ h.</summary>
internal sealed class ConePrimitive(int classId, Vector3 basePoint, float yaw, float radius, float height, SceneMaterial material)
    : ScenePrimitive(classId, basePoint, yaw, radius, height, material)
{
    private readonly float slope2 = radius * radius / (height * height);

    protected override bool IntersectLocal(Vector3 o, Vector3 d, out float t, out Vector3 normal)
    {
        t = 0;
        normal = default;
        // f(t) = x² + z² − k²·(h − y)² along the ray; inside the double cone where f ≤ 0.
        float q = Height - o.Y, e = -d.Y;
        float a = d.X * d.X + d.Z * d.Z - slope2 * e * e;
        float halfB = o.X * d.X + o.Z * d.Z - slope2 * q * e;
        float c = o.X * o.X + o.Z * o.Z - slope2 * q * q;
        if (!HeightSlab(o.Y, d.Y, Height, out float near, out float far))
            return false;
        float enter, exit;
        if (!SolveQuadratic(a, halfB, c, out float t0, out float t1))
        {
            if (a > 0)
                return false;
            (enter, exit) = (float.NegativeInfinity, float.PositiveInfinity);
        }
        else if (a > 0)
            (enter, exit) = (t0, t1); // flatter than the cone wall: one piece, inside between the roots
        else
            // Steeper than the wall: inside before t0 and after t1, one piece per nappe; keep the lower nappe's.
            (enter, exit) = d.Y > 0 ? (float.NegativeInfinity, t0) : (t1, float.PositiveInfinity);
        t = MathF.Max(enter, near);
        if (t > MathF.Min(exit, far))
            return false;
        if (enter >= near)
        {
            Vector3 p = o + t * d;
            normal = Vector3.Normalize(new Vector3(p.X, slope2 * (Height - p.Y), p.Z)); // gradient of f
        }
        else
            normal = new Vector3(0, -1, 0); // base disc (only reachable from below the floor)
        return true;
    }
}

/// <summary>Capsule lying on the floor along its local x axis: segment (±halfLength, r, 0) swept by a ball of radius r.</summary>
internal sealed class CapsulePrimitive(int classId, Vector3 basePoint, float yaw, float radius, float halfLength, SceneMaterial material)
    : ScenePrimitive(classId, basePoint, yaw, halfLength + radius, 2 * radius, material)
{
    private readonly float radius = radius;
    private readonly Vector3 end0 = new(-halfLength, radius, 0), axis = new(2 * halfLength, 0, 0);

    protected override bool IntersectLocal(Vector3 o, Vector3 d, out float t, out Vector3 normal)
    {
        // Inigo Quilez, "capsule intersection": the cylinder part first, then the nearer end ball.
        t = 0;
        normal = default;
        Vector3 oa = o - end0;
        float axisAxis = Vector3.Dot(axis, axis), axisD = Vector3.Dot(axis, d), axisOa = Vector3.Dot(axis, oa);
        float a = axisAxis - axisD * axisD;
        float halfB = axisAxis * Vector3.Dot(oa, d) - axisOa * axisD;
        float c = axisAxis * Vector3.Dot(oa, oa) - axisOa * axisOa - radius * radius * axisAxis;
        if (!SolveQuadratic(a, halfB, c, out t, out _))
            return false;
        float along = axisOa + t * axisD;
        if (along <= 0 || along >= axisAxis)
        {
            Vector3 oc = along <= 0 ? oa : oa - axis;
            if (!SolveQuadratic(1f, Vector3.Dot(oc, d), Vector3.Dot(oc, oc) - radius * radius, out t, out _))
                return false;
        }
        Vector3 pa = o + t * d - end0;
        float h = Math.Clamp(Vector3.Dot(pa, axis) / axisAxis, 0f, 1f);
        normal = (pa - h * axis) / radius;
        return true;
    }
}

/// <summary>
/// A convex polyhedron given by planes n·p ≤ offset (object frame): boxes and square pyramids.
/// The ray enters at the largest entering-plane distance and leaves at the smallest leaving one (Kay–Kajiya slabs).
/// </summary>
internal sealed class ConvexPolyhedron : ScenePrimitive
{
    private readonly Vector3[] normals;
    private readonly float[] offsets;

    private ConvexPolyhedron(int classId, Vector3 basePoint, float yaw, float footprintRadius, float height, SceneMaterial material,
        Vector3[] normals, float[] offsets)
        : base(classId, basePoint, yaw, footprintRadius, height, material)
    {
        this.normals = normals;
        this.offsets = offsets;
    }

    /// <summary>Box [−halfX, halfX] × [0, height] × [−halfZ, halfZ].</summary>
    public static ConvexPolyhedron Box(int classId, Vector3 basePoint, float yaw, float halfX, float halfZ, float height, SceneMaterial material) =>
        new(classId, basePoint, yaw, MathF.Sqrt(halfX * halfX + halfZ * halfZ), height, material,
            [Vector3.UnitX, -Vector3.UnitX, Vector3.UnitY, -Vector3.UnitY, Vector3.UnitZ, -Vector3.UnitZ],
            [halfX, halfX, height, 0, halfZ, halfZ]);

    /// <summary>Square pyramid: base [−half, half]² on the floor, apex (0, height, 0).</summary>
    public static ConvexPolyhedron Pyramid(int classId, Vector3 basePoint, float yaw, float half, float height, SceneMaterial material)
    {
        // A side through the apex and the base edge x = half has normal ∝ (height, half, 0) and offset n·apex.
        float norm = MathF.Sqrt(height * height + half * half), sideOffset = half * height / norm;
        Vector3[] normals =
        [
            -Vector3.UnitY,
            new(height / norm, half / norm, 0), new(-height / norm, half / norm, 0),
            new(0, half / norm, height / norm), new(0, half / norm, -height / norm),
        ];
        return new(classId, basePoint, yaw, half * MathF.Sqrt(2f), height, material, normals, [0, sideOffset, sideOffset, sideOffset, sideOffset]);
    }

    protected override bool IntersectLocal(Vector3 o, Vector3 d, out float t, out Vector3 normal)
    {
        float near = float.NegativeInfinity, far = float.PositiveInfinity;
        int entering = -1;
        t = 0;
        normal = default;
        for (int i = 0; i < normals.Length; i++)
        {
            float towards = Vector3.Dot(normals[i], d), distance = offsets[i] - Vector3.Dot(normals[i], o);
            if (MathF.Abs(towards) < 1e-9f)
            {
                if (distance < 0)
                    return false;
                continue;
            }
            float crossing = distance / towards;
            if (towards < 0)
            {
                if (crossing > near)
                    (near, entering) = (crossing, i);
            }
            else if (crossing < far)
                far = crossing;
            if (near > far)
                return false;
        }
        if (entering < 0)
            return false;
        t = near;
        normal = normals[entering];
        return true;
    }
}
