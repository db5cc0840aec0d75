using System.Globalization;

namespace Kem.Toys;

/// <summary>"--name value" pairs of one subcommand; every option has a default and unknown options are an error.</summary>
internal sealed class CommandLine
{
    private readonly Dictionary<string, string> values = new(StringComparer.Ordinal);
    private readonly HashSet<string> read = new(StringComparer.Ordinal);

    public CommandLine(IEnumerable<string> args)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i += 2)
        {
            if (!list[i].StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"Expected an option --name, got '{list[i]}'.");
            if (i + 1 >= list.Count) throw new ArgumentException($"Option {list[i]} needs a value.");
            values[list[i][2..]] = list[i + 1];
        }
    }

    public string Text(string name, string fallback) { read.Add(name); return values.TryGetValue(name, out var v) ? v : fallback; }
    public int Int(string name, int fallback) => int.Parse(Text(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
    public double Double(string name, double fallback) => double.Parse(Text(name, fallback.ToString("R", CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
    public T Enum<T>(string name, T fallback) where T : struct, System.Enum => System.Enum.Parse<T>(Text(name, fallback.ToString()), ignoreCase: true);
    public int[] Ints(string name, string fallback) => Text(name, fallback).Split(',', StringSplitOptions.RemoveEmptyEntries).Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();
    public double[] Doubles(string name, string fallback) => Text(name, fallback).Split(',', StringSplitOptions.RemoveEmptyEntries).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
    public T[] Enums<T>(string name, string fallback) where T : struct, System.Enum => Text(name, fallback).Split(',', StringSplitOptions.RemoveEmptyEntries).Select(v => System.Enum.Parse<T>(v, ignoreCase: true)).ToArray();

    /// <summary>Throws when an option was given that the subcommand never read (a typo).</summary>
    public void RejectUnknown(string usage)
    {
        var unknown = values.Keys.Where(k => !read.Contains(k)).ToArray();
        if (unknown.Length > 0) throw new ArgumentException($"Unknown option(s) {string.Join(", ", unknown.Select(u => "--" + u))}.\n{usage}");
    }
}

/// <summary>Mean ± sample standard deviation over seeds.</summary>
internal static class Stats
{
    public static (double Mean, double Std) Of(IReadOnlyCollection<double> values)
    {
        double mean = values.Average();
        double std = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1)) : 0;
        return (mean, std);
    }

    public static string Percent(IReadOnlyCollection<double> values)
    {
        var (mean, std) = Of(values);
        return string.Create(CultureInfo.InvariantCulture, $"{100 * mean:F1} ± {100 * std:F1}");
    }

    public static string Plain(IReadOnlyCollection<double> values, string format = "F3")
    {
        var (mean, std) = Of(values);
        return string.Create(CultureInfo.InvariantCulture, $"{mean.ToString(format, CultureInfo.InvariantCulture)} ± {std.ToString(format, CultureInfo.InvariantCulture)}");
    }
}
