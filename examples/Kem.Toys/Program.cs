// KemMl toy experiments: the paper's Fig. 1 noise toy, its Table 1 Sort-of-CLEVR imbalance experiment, and slot
// visualisation of a trained KEM network. Every run is in fp32, on the CPU unless clevr's --device says otherwise;
// sizes, steps and seeds are options.
// Usage: dotnet run -c Release --project examples/Kem.Toys -- noise|clevr|slots [--option value ...]
//        dotnet run -c Release --project examples/Kem.Toys -- help
using System.Diagnostics;
using System.Runtime.InteropServices;
using Kem.Toys;
using TorchSharp;

if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
{
    Console.WriteLine(Usage.All);
    return args.Length == 0 ? 1 : 0;
}

var options = new CommandLine(args.Skip(1));
int threads = options.Int("threads", 0);
if (threads > 0) torch.set_num_threads(threads);
Console.WriteLine($"Machine: {RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture}, {Environment.ProcessorCount} logical CPUs, " +
                  $"torch threads {torch.get_num_threads()}, .NET {Environment.Version}, TorchSharp fp32, CUDA {(torch.cuda.is_available() ? "available" : "not available")}.");
Console.WriteLine($"Command: {args[0]} {string.Join(' ', args.Skip(1))}");
var clock = Stopwatch.StartNew();
int code = args[0] switch
{
    "noise" => NoiseCommand.Run(options),
    "clevr" => ClevrCommand.Run(options),
    "slots" => SlotsCommand.Run(options),
    _ => throw new ArgumentException($"Unknown subcommand '{args[0]}'.\n{Usage.All}"),
};
Console.WriteLine($"Total wall time {clock.Elapsed.TotalSeconds:F0} s.");
return code;

internal static class Usage
{
    public const string Noise =
        "noise  [--steps 3000] [--batch 64] [--lr 1e-3] [--eval 1000] [--seeds 1,2,3,4,5] [--hidden-noise 0,0.5,1]  (comma lists)\n" +
        "       [--slots 4] [--topk 4] [--position-std 1] [--interactions CrossAttention,Kem] [--tasks 3,2] [--threads 0]";
    public const string Clevr =
        "clevr  [--train-images 10000] [--test-images 2000] [--epochs 100] [--batch 64] [--lr 1e-4] [--seeds 1,2,3,4,5]\n" +
        "       [--methods Kem,StableKem] [--splits Balanced,LongTail] [--exponent 2] [--data-seed 0]\n" +
        "       [--width 256] [--heads 4] [--mlp-ratio 2] [--image-depth 2] [--encoder-depth 2] [--decoder-depth 1] [--dropout 0.1]\n" +
        "       [--front Patches|CnnCells] [--slots 8] [--topk 5] [--etf TaskVertices|SlotVertices] [--threads 0] [--device cpu|cuda|auto]\n" +
        "       [--max-seconds 0]  (wall-clock budget of the whole command; 0: none. The runs share it, each stops training early and is evaluated)";
    public const string Slots =
        "slots  [--train 256] [--images 4] [--size 64] [--epochs 4] [--batch 8] [--lr 1e-3] [--width 64] [--heads 4]\n" +
        "       [--slots 8] [--topk 3] [--interaction Kem|StableKem] [--etf SlotVertices|TaskVertices] [--seed 1] [--out out/slots] [--threads 0]";
    public const string All = "Usage: dotnet run -c Release --project examples/Kem.Toys -- <subcommand> [options]\n" + Noise + "\n" + Clevr + "\n" + Slots;
}
