using System.Runtime.InteropServices;
using Microsoft.ML.Kem;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Training;

/// <summary>
/// Running out of memory mid-training, mid-validation or mid-prediction gives an exception that says what was running and
/// what to change. The failures are real: libtorch's allocator refusing a 256 TiB tensor (on the CPU here; on CUDA the
/// caching allocator's refusal comes back as the same exception type, "CUDA out of memory…").
/// </summary>
[TestClass]
public sealed class OutOfMemoryTests
{
    private const int H = 32, W = 32;

    private static readonly TrainingOptions Quick = new()
    {
        Epochs = 2, BatchSize = 2, LearningRate = 1e-3, WarmupSteps = 1, Device = ComputeDevice.Cpu, ReportEverySteps = 1,
    };

    private static MemoryHog Hog(Func<int, bool, bool> failsOn)
    {
        torch.manual_seed(5);
        return new MemoryHog(new MultiTaskNetwork(MultiTaskNetworkOptions.Tiny(TinyData.SegDepth) with
        {
            ImageHeight = H, ImageWidth = W, Width = 32, Heads = 2,
            Interaction = new InteractionOptions { Kind = InteractionKind.Kem, MemorySlots = 4, TopK = 2 },
        }), failsOn);
    }

    private static ExternalException AllocatorRefusal()
    {
        try
        {
            using var huge = empty(1L << 46);
        }
        catch (ExternalException e)
        {
            return e;
        }
        throw new AssertFailedException("a 256 TiB allocation succeeded");
    }

    [TestMethod]
    public void The_allocators_refusal_is_told_apart_from_other_native_errors()
    {
        var refusal = AllocatorRefusal();
        Assert.IsTrue(DeviceMemory.IsExhausted(refusal), refusal.Message);
        Assert.IsTrue(DeviceMemory.IsExhausted(new InvalidOperationException("The batch prefetcher stopped early.", refusal)), "wrapped by another thread");

        ExternalException shapes;
        try
        {
            using var sum = ones(2, 3).add(ones(4, 5));                          // (TorchSharp 0.107's matmul aborts instead)
            throw new AssertFailedException("a 2×3 + 4×5 sum succeeded");
        }
        catch (ExternalException e) { shapes = e; }
        Assert.IsFalse(DeviceMemory.IsExhausted(shapes), shapes.Message);
        Assert.IsFalse(DeviceMemory.IsExhausted(new InvalidOperationException("out of memory")), "only libtorch's own errors");

        var explained = DeviceMemory.Exhausted(refusal, CPU, "doing X", "Do Y.");
        StringAssert.StartsWith(explained.Message, "The cpu device ran out of memory while doing X: ");
        StringAssert.Contains(explained.Message, "can't allocate memory");
        StringAssert.EndsWith(explained.Message, " Do Y.");
        Assert.DoesNotContain("frame #", explained.Message, "libtorch's C++ stack stays in the inner exception");
        Assert.AreSame(refusal, explained.InnerException);
    }

    [TestMethod]
    public void Training_that_runs_out_of_memory_names_the_step_and_what_to_change()
    {
        var data = TinyData.Make(TinyData.SegDepth, 4, H, W, seed: 1);
        using var hog = Hog((call, training) => training && call == 3);   // the 3rd training forward: epoch 2, step 1
        var e = Assert.ThrowsExactly<InsufficientMemoryException>(() => MultiTaskTrainingLoop.Fit(hog, data, null, Quick));
        StringAssert.Contains(e.Message, "ran out of memory while running training step 3 of 4 (epoch 2, batch 2)");
        StringAssert.Contains(e.Message, "TrainingOptions.BatchSize (now 2)");
        StringAssert.Contains(e.Message, $"image size (now {H}×{W})");
        Assert.DoesNotContain("Device = Cpu", e.Message, "already on the CPU");
        Assert.IsInstanceOfType<ExternalException>(e.InnerException);
        Assert.AreEqual(3, hog.TrainingForwards, "stopped at the failing step");
    }

    [TestMethod]
    public void Validation_and_prediction_that_run_out_of_memory_say_so()
    {
        var data = TinyData.Make(TinyData.SegDepth, 4, H, W, seed: 2);
        using (var hog = Hog((call, training) => !training))
        {
            var e = Assert.ThrowsExactly<InsufficientMemoryException>(() => MultiTaskTrainingLoop.Fit(hog, data, data, Quick));
            StringAssert.Contains(e.Message, "while validating after epoch 1 (batch 2)");
        }
        using (var hog = Hog((call, training) => !training))
        {
            var e = Assert.ThrowsExactly<InsufficientMemoryException>(() => Evaluation.Evaluate(hog, data, batchSize: 3));
            StringAssert.Contains(e.Message, $"while predicting 3 image(s) of {H}×{W}");
            StringAssert.Contains(e.Message, "batchSize");
        }
    }

    /// <summary>A real network whose forward first asks libtorch for a 256 TiB tensor when <c>failsOn(call, training)</c> says so.</summary>
    private sealed class MemoryHog : MultiTaskModel
    {
        private readonly MultiTaskModel inner;
        private readonly Func<int, bool, bool> failsOn;
        private int calls;

        public MemoryHog(MultiTaskModel inner, Func<int, bool, bool> failsOn) : base("hog", inner.Options)
        {
            (this.inner, this.failsOn) = (inner, failsOn);
            register_module("inner", inner);
        }

        public int TrainingForwards { get; private set; }

        public override Tensor[] forward(Tensor images)
        {
            if (training) TrainingForwards++;
            if (failsOn(++calls, training))
            {
                using var huge = empty(1L << 46);
            }
            return inner.forward(images);
        }
    }
}
