using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

/// <summary>
/// Sets VER_FLG_WEAK on one version-need (Vernaux) entry of a 64-bit little-endian ELF shared object.
/// Layouts from the System V gABI / Linux Standard Base: Elf64_Ehdr, Elf64_Shdr, Elf64_Verneed, Elf64_Vernaux.
/// Idempotent; a file without that entry is left untouched.
/// </summary>
public class KemMarkElfVersionWeak : Task
{
    public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();
    public string VersionName { get; set; } = "";

    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            var path = item.ItemSpec;
            try
            {
                var result = Patch(path, VersionName);
                Log.LogMessage(MessageImportance.Low, $"KemMarkElfVersionWeak: {path}: {result}");
            }
            catch (Exception e)
            {
                Log.LogError($"KemMarkElfVersionWeak: cannot patch '{path}': {e.Message}");
                return false;
            }
        }
        return !Log.HasLoggedErrors;
    }

    private static string Patch(string path, string versionName)
    {
        byte[] b = File.ReadAllBytes(path);
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (b[4] != 2 || b[5] != 1) throw new InvalidDataException("only 64-bit little-endian ELF is supported");

        long shoff = (long)BitConverter.ToUInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            long sh = shoff + (long)i * shentsize;
            if (BitConverter.ToUInt32(b, (int)sh + 4) != ShtGnuVerneed) continue;
            long off = (long)BitConverter.ToUInt64(b, (int)sh + 0x18);
            int link = (int)BitConverter.ToUInt32(b, (int)sh + 0x28);
            long strOff = (long)BitConverter.ToUInt64(b, (int)(shoff + (long)link * shentsize) + 0x18);

            long vn = off;
            while (true)
            {
                int cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                long aux = vn + BitConverter.ToUInt32(b, (int)vn + 8);
                for (int a = 0; a < cnt; a++)
                {
                    uint nameOff = BitConverter.ToUInt32(b, (int)aux + 8);
                    if (ReadCString(b, strOff + nameOff) == versionName)
                    {
                        int flagsAt = (int)aux + 4;
                        ushort flags = BitConverter.ToUInt16(b, flagsAt);
                        if ((flags & VerFlgWeak) != 0) return "already weak";
                        flags |= VerFlgWeak;
                        b[flagsAt] = (byte)(flags & 0xff);
                        b[flagsAt + 1] = (byte)(flags >> 8);
                        string tmp = path + ".kempatch";
                        File.WriteAllBytes(tmp, b);
                        File.Copy(tmp, path, true); File.Delete(tmp);
                        return "marked weak";
                    }
                    uint next = BitConverter.ToUInt32(b, (int)aux + 12);
                    if (next == 0) break;
                    aux += next;
                }
                uint vnNext = BitConverter.ToUInt32(b, (int)vn + 12);
                if (vnNext == 0) break;
                vn += vnNext;
            }
        }
        return "no such version need";
    }

    private static string ReadCString(byte[] b, long at)
    {
        int end = (int)at;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)at, end - (int)at);
    }
}
