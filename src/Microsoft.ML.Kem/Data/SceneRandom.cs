namespace Microsoft.ML.Kem.Data;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014): a tiny PRNG whose output is fixed by its definition, unlike
/// <see cref="System.Random"/>, so generated scenes stay byte-identical across .NET versions.
/// </summary>
internal struct SceneRandom
{
    private ulong state;

    private SceneRandom(ulong state) => this.state = state;

    /// <summary>The stream for image <paramref name="index"/> of a dataset with <paramref name="seed"/>: independent of every other index.</summary>
    public static SceneRandom ForImage(long seed, int index) => new(Mix(Mix((ulong)seed) + (ulong)(uint)index));

    /// <summary>The SplitMix64 output function (a bijective 64-bit mixer).</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ul;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBul;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        state += 0x9E3779B97F4A7C15ul;
        return Mix(state);
    }

    /// <summary>Uniform in [0, 1), 24 random bits.</summary>
    public float NextFloat() => (NextUInt64() >> 40) * (1f / (1 << 24));

    /// <summary>Uniform in [<paramref name="low"/>, <paramref name="high"/>).</summary>
    public float Uniform(float low, float high) => low + (high - low) * NextFloat();

    /// <summary>Uniform integer in [0, <paramref name="count"/>).</summary>
    public int NextInt(int count) => (int)(((NextUInt64() >> 32) * (ulong)count) >> 32);
}
