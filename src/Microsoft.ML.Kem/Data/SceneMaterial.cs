using System.Numerics;

namespace Microsoft.ML.Kem.Data;

/// <summary>Procedural surface patterns; every class draws from all of them, so colour and texture do not give the class away.</summary>
internal enum TexturePattern
{
    Plain,
    Checker,
    Stripes,
    Noise,
}

/// <summary>
/// A solid (3-D) texture: albedo at a point mixes two colours by a checker, stripe or value-noise pattern.
/// Objects are textured in their own frame, room surfaces in world coordinates.
/// </summary>
internal sealed class SceneMaterial(Vector3 colorA, Vector3 colorB, TexturePattern pattern, float frequency, int stripeAxis, uint noiseSeed)
{
    public Vector3 Albedo(Vector3 point)
    {
        Vector3 p = point * frequency;
        switch (pattern)
        {
            case TexturePattern.Checker:
                int parity = (int)MathF.Floor(p.X) + (int)MathF.Floor(p.Y) + (int)MathF.Floor(p.Z);
                return (parity & 1) == 0 ? colorA : colorB;
            case TexturePattern.Stripes:
                float along = stripeAxis switch { 0 => p.X, 1 => p.Y, _ => p.Z };
                return along - MathF.Floor(along) < 0.5f ? colorA : colorB;
            case TexturePattern.Noise:
                return Vector3.Lerp(colorA, colorB, ValueNoise(p));
            default:
                return colorA;
        }
    }

    /// <summary>Trilinear value noise in [0, 1] with smoothstep weights over a hashed integer lattice.</summary>
    private float ValueNoise(Vector3 p)
    {
        float fx = MathF.Floor(p.X), fy = MathF.Floor(p.Y), fz = MathF.Floor(p.Z);
        int x = (int)fx, y = (int)fy, z = (int)fz;
        float tx = Smooth(p.X - fx), ty = Smooth(p.Y - fy), tz = Smooth(p.Z - fz);
        float Lattice(int dx, int dy, int dz) => Hash(x + dx, y + dy, z + dz);
        float x00 = Lerp(Lattice(0, 0, 0), Lattice(1, 0, 0), tx), x10 = Lerp(Lattice(0, 1, 0), Lattice(1, 1, 0), tx);
        float x01 = Lerp(Lattice(0, 0, 1), Lattice(1, 0, 1), tx), x11 = Lerp(Lattice(0, 1, 1), Lattice(1, 1, 1), tx);
        return Lerp(Lerp(x00, x10, ty), Lerp(x01, x11, ty), tz);
    }

    private float Hash(int x, int y, int z)
    {
        ulong key = noiseSeed + (uint)x * 0x9E3779B97F4A7C15ul + (uint)y * 0xC2B2AE3D27D4EB4Ful + (uint)z * 0x165667B19E3779F9ul;
        ulong h = SceneRandom.Mix(key);
        return (h >> 40) * (1f / (1 << 24));
    }

    private static float Smooth(float t) => t * t * (3f - 2f * t);

    private static float Lerp(float a, float b, float t) => a + (b - a) * t;

    /// <summary>A random material: a random colour, a second one (random or a darker shade) and a random pattern.</summary>
    public static SceneMaterial Random(ref SceneRandom random, float minFrequency, float maxFrequency, bool allowNoise = true)
    {
        Vector3 a = RandomColor(ref random);
        Vector3 b = random.NextFloat() < 0.5f ? RandomColor(ref random) : a * random.Uniform(0.35f, 0.7f);
        var pattern = (TexturePattern)random.NextInt(allowNoise ? 4 : 3);
        float frequency = random.Uniform(minFrequency, maxFrequency);
        int axis = random.NextInt(3);
        uint seed = (uint)random.NextUInt64();
        return new SceneMaterial(a, b, pattern, frequency, axis, seed);
    }

    /// <summary>A colour from random hue, saturation 0.15..0.9 and value 0.35..1 (HSV → linear RGB).</summary>
    private static Vector3 RandomColor(ref SceneRandom random)
    {
        float hue = random.NextFloat() * 6f, saturation = random.Uniform(0.15f, 0.9f), value = random.Uniform(0.35f, 1f);
        int sector = (int)hue;
        float f = hue - sector;
        float p = value * (1 - saturation), q = value * (1 - saturation * f), t = value * (1 - saturation * (1 - f));
        return sector switch
        {
            0 => new Vector3(value, t, p),
            1 => new Vector3(q, value, p),
            2 => new Vector3(p, value, t),
            3 => new Vector3(p, q, value),
            4 => new Vector3(t, p, value),
            _ => new Vector3(value, p, q),
        };
    }
}
