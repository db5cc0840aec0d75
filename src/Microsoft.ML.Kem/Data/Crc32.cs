namespace Microsoft.ML.Kem.Data;

/// <summary>CRC-32 (ISO 3309 / ITU-T V.42, polynomial 0xEDB88320 reflected), as PNG chunks use it (PNG spec §5.5).</summary>
internal static class Crc32
{
    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }

    /// <summary>CRC of <paramref name="bytes"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> bytes) => Finish(Append(Start, bytes));

    /// <summary>Running value before any byte.</summary>
    public const uint Start = 0xFFFFFFFFu;

    /// <summary>Feeds <paramref name="bytes"/> into a running value.</summary>
    public static uint Append(uint running, ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
            running = Table[(running ^ b) & 0xFF] ^ (running >> 8);
        return running;
    }

    /// <summary>Final CRC from a running value.</summary>
    public static uint Finish(uint running) => running ^ 0xFFFFFFFFu;
}
