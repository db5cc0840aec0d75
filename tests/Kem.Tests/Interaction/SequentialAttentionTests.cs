using Microsoft.ML.Kem.Interaction;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests.Interaction;

[TestClass]
public sealed class SequentialAttentionTests
{
    private static float MaxChange(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [TestMethod]
    public void Ctam_updates_each_task_from_the_other_tasks_and_never_attends_to_itself()
    {
        torch.manual_seed(1);
        using var ctam = new CrossTaskAttentionModule("ctam", tasks: 3, channels: 8, heads: 2, keyPool: 1);
        ctam.eval();
        using var scope = torch.NewDisposeScope();
        var maps = torch.randn(new long[] { 2, 3, 8, 4, 4 });
        var y = ctam.forward(maps);
        CollectionAssert.AreEqual(maps.shape, y.shape);
        var changed = maps.clone();
        changed[TensorIndex.Colon, 2] += torch.randn(2, 8, 4, 4);   // change task 2 only
        var z = ctam.forward(changed);
        Assert.IsGreaterThan(1e-4f, MaxChange(y.select(1, 0), z.select(1, 0)), "task 0 attends to task 2");
        Assert.IsGreaterThan(1e-4f, MaxChange(y.select(1, 1), z.select(1, 1)), "task 1 attends to task 2");

        // when every other task is spatially constant, all keys are equal, so the update of task 0 is the same
        // whatever task 0's own map holds: task 0 is never among its own keys and values
        var constant = maps.clone();
        constant[TensorIndex.Colon, 1] = torch.randn(2, 8, 1, 1).expand(2, 8, 4, 4);
        constant[TensorIndex.Colon, 2] = torch.randn(2, 8, 1, 1).expand(2, 8, 4, 4);
        var other = constant.clone();
        other[TensorIndex.Colon, 0] = torch.randn(2, 8, 4, 4);
        var update = ctam.forward(constant).select(1, 0) - constant.select(1, 0);
        var otherUpdate = ctam.forward(other).select(1, 0) - other.select(1, 0);
        Assert.IsLessThan(1e-5f, MaxChange(update, otherUpdate));
    }

    [TestMethod]
    public void Ctam_keys_are_average_pooled_so_changes_that_keep_each_window_mean_are_not_seen()
    {
        torch.manual_seed(2);
        using var ctam = new CrossTaskAttentionModule("ctam", tasks: 2, channels: 8, heads: 2, keyPool: 2);
        ctam.eval();
        using var scope = torch.NewDisposeScope();
        var maps = torch.randn(new long[] { 1, 2, 8, 4, 4 });
        var y = ctam.forward(maps);
        var shifted = maps.clone();
        // +δ at pixel (0,0) and −δ at (1,1) of task 1: same 2×2 window, same mean, so task 0's keys and values are unchanged
        var delta = torch.randn(8);
        shifted[0, 1, TensorIndex.Colon, 0, 0] += delta;
        shifted[0, 1, TensorIndex.Colon, 1, 1] -= delta;
        Assert.IsLessThan(1e-5f, MaxChange(ctam.forward(shifted).select(1, 0), y.select(1, 0)));
        using var unpooled = new CrossTaskAttentionModule("ctam", tasks: 2, channels: 8, heads: 2, keyPool: 1);
        unpooled.load_state_dict(ctam.state_dict());
        unpooled.eval();
        Assert.IsGreaterThan(1e-4f, MaxChange(unpooled.forward(shifted).select(1, 0), unpooled.forward(maps).select(1, 0)), "without pooling the change is seen");
    }

    [TestMethod]
    public void Csam_runs_coarse_to_fine_keeps_the_coarsest_scale_and_never_reads_finer_scales()
    {
        torch.manual_seed(3);
        using var csam = new CrossScaleAttentionModule("csam", new[] { 8, 16, 32 }, new[] { 1, 2, 4 });
        using var scope = torch.NewDisposeScope();
        var maps = new[] { torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4), torch.randn(2, 32, 2, 2) };
        var y = csam.forward(maps);
        for (int s = 0; s < 3; s++) CollectionAssert.AreEqual(maps[s].shape, y[s].shape);
        Assert.AreEqual(0f, MaxChange(y[2], maps[2]), "the coarsest scale is unchanged");
        var finer = new[] { maps[0] + 1f, maps[1], maps[2] };
        var z = csam.forward(finer);
        Assert.AreEqual(0f, MaxChange(z[1], y[1]), "scale 1 reads only coarser scales");
        var coarser = new[] { maps[0], maps[1], maps[2] + torch.randn(2, 32, 2, 2) };
        var w = csam.forward(coarser);
        Assert.IsGreaterThan(1e-4f, MaxChange(w[0] , y[0]), "the finest scale reads the coarsest");
        Assert.IsGreaterThan(1e-4f, MaxChange(w[1], y[1]));
    }
}
