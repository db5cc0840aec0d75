using Kem.Experiments;
using Microsoft.ML.Kem.Interaction;
using Microsoft.ML.Kem.Modeling;
using Microsoft.ML.Kem.Tasks;

namespace Kem.Tests.Experiments;

/// <summary>Kem.Experiments' command line: presets, the §15 ablation flags and the depth cap reach the network and metric options.</summary>
[TestClass]
public sealed class ExperimentSettingsTests
{
    private static readonly TaskSpec[] Tasks = [TaskSpec.Segmentation(40), TaskSpec.DepthTask()];

    private static InteractionOptions InteractionOf(params string[] args) => ExperimentSettings.Parse(args).NetworkOptions(Tasks).Interaction;

    [TestMethod]
    public void Without_flags_the_network_is_todays_default()
    {
        var o = ExperimentSettings.Parse([]).NetworkOptions(Tasks);
        Assert.AreEqual((BackboneKind.TinyViT, 64, 4, 2, 1, 1, 64, 64), (o.Backbone, o.Width, o.Heads, o.BackboneDepth, o.EncoderDepth, o.DecoderDepth, o.ImageHeight, o.ImageWidth));
        Assert.AreEqual(new InteractionOptions { MemorySlots = 20, TopK = 3, EtfMode = EtfMode.TaskVertices }, o.Interaction);
        Assert.IsNull(ExperimentSettings.Parse([]).MetricOptions.DepthEvalMaxMetres);
    }

    [TestMethod]
    public void Each_ablation_flag_sets_its_interaction_option()
    {
        Assert.AreEqual(TopKMode.Renormalized, InteractionOf("--topk-mode", "renormalized").TopKMode);
        Assert.AreEqual(MemoryUpdate.Gated, InteractionOf("--memory-update", "Gated").MemoryUpdate);
        Assert.AreEqual(MemoryUpdate.Replace, InteractionOf("--memory-update", "Replace").MemoryUpdate);
        Assert.IsTrue(InteractionOf("--memory-mlp").MemoryMlp);
        Assert.AreEqual(MemoryInit.Identity, InteractionOf("--memory-init", "Identity").MemoryInit);
        Assert.AreEqual(MemoryInit.TruncatedNormal, InteractionOf().MemoryInit);
        Assert.IsTrue(InteractionOf("--per-task-write-query").PerTaskWriteQuery);
        Assert.IsFalse(InteractionOf().PerTaskWriteQuery);
        Assert.AreEqual(TopKAxis.Slots, InteractionOf("--topk-axis", "Slots").TopKAxis);
        Assert.AreEqual(3, InteractionOf("--kem-blocks", "3").KemBlocks);
        Assert.AreEqual(ScoreScale.None, InteractionOf("--score-scale", "None").ScoreScale);
        Assert.IsFalse(InteractionOf("--no-etf-input-projection").EtfInputProjection);
        Assert.IsTrue(InteractionOf("--task-embedding").TaskEmbedding);
        Assert.AreEqual(EtfMode.Span, InteractionOf("--etf", "Span").EtfMode);
        Assert.AreEqual(1, ExperimentSettings.Parse(["--heads", "1"]).NetworkOptions(Tasks).Heads);
        var defaults = InteractionOf();
        Assert.AreEqual((TopKMode.Masked, MemoryUpdate.Residual, false, TopKAxis.Tokens, 1, ScoreScale.InvSqrtHeadDim, true, false),
            (defaults.TopKMode, defaults.MemoryUpdate, defaults.MemoryMlp, defaults.TopKAxis, defaults.KemBlocks, defaults.ScoreScale, defaults.EtfInputProjection, defaults.TaskEmbedding));
    }

    [TestMethod]
    public void Switches_take_no_value_and_the_next_option_still_parses()
    {
        var s = ExperimentSettings.Parse(["--memory-mlp", "--m", "7", "--task-embedding"]);
        Assert.AreEqual((true, 7, true), (s.Interaction.MemoryMlp, s.Interaction.MemorySlots, s.Interaction.TaskEmbedding));
    }

    [TestMethod]
    [DataRow("--topk-mode", "Soft", "Masked|Renormalized")]
    [DataRow("--memory-update", "Add", "Residual|Replace|Gated")]
    [DataRow("--topk-axis", "Heads", "Tokens|Slots")]
    [DataRow("--score-scale", "Half", "InvSqrtHeadDim|None")]
    [DataRow("--etf", "Vertices", "Off|TaskVertices|SlotVertices|Span")]
    [DataRow("--preset", "Huge", "Custom|Tiny|Small|Dev|Gpu448|Paper")]
    [DataRow("--kem-blocks", "two", "whole number")]
    [DataRow("--depth-eval-max", "-1", "positive number of metres")]
    public void A_bad_value_names_the_flag_and_what_it_takes(string flag, string value, string allowed)
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() => ExperimentSettings.Parse([flag, value]));
        Assert.Contains(flag, error.Message);
        Assert.Contains(allowed, error.Message);
        Assert.Contains($"'{value}'", error.Message);
    }

    [TestMethod]
    public void Usage_lists_every_new_flag_and_Span()
    {
        foreach (var flag in new[] { "--preset", "--topk-mode", "--memory-update", "--memory-mlp", "--topk-axis", "--kem-blocks", "--score-scale",
                     "--no-etf-input-projection", "--task-embedding", "--heads", "--depth-eval-max", "TaskVertices|SlotVertices|Span" })
            Assert.Contains(flag, ExperimentSettings.Usage);
    }

    [TestMethod]
    public void Depth_eval_max_sets_the_metric_cap()
    {
        Assert.AreEqual(6.5535f, ExperimentSettings.Parse(["--depth-eval-max", "6.5535"]).MetricOptions.DepthEvalMaxMetres);
    }

    [TestMethod]
    public void Eval_original_size_is_a_switch_off_by_default()
    {
        Assert.IsFalse(ExperimentSettings.Parse([]).MetricOptions.ResizePredictionsToLabels);
        var s = ExperimentSettings.Parse(["--eval-original-size", "--m", "7"]);
        Assert.AreEqual((true, true, 7), (s.EvalOriginalSize, s.MetricOptions.ResizePredictionsToLabels, s.Interaction.MemorySlots));
        Assert.Contains("--eval-original-size", ExperimentSettings.Usage);
    }

    [TestMethod]
    public void Ca_form_applies_to_the_cross_attention_row_only()
    {
        var s = ExperimentSettings.Parse(["--ca-form", "MtformerWindow", "--ca-window", "5"]);
        var shared = s.NetworkOptions([Microsoft.ML.Kem.Tasks.TaskSpec.Segmentation(4), Microsoft.ML.Kem.Tasks.TaskSpec.DepthTask()]);
        var ca = Methods.Configure(Methods.CrossAttention, shared).Interaction;
        Assert.AreEqual((InteractionKind.CrossAttention, CrossAttentionForm.MtformerWindow, 5), (ca.Kind, ca.CrossAttentionForm, ca.CrossAttentionWindow));
        foreach (var method in new[] { Methods.Kem, Methods.StableKem, Methods.Stl, Methods.HardSharing, Methods.NoInteraction })
            Assert.AreEqual(CrossAttentionForm.Global, Methods.Configure(method, shared).Interaction.CrossAttentionForm, method);
        var error = Assert.ThrowsExactly<ArgumentException>(() => ExperimentSettings.Parse(["--ca-form", "Local"]));
        Assert.Contains("Global|MtformerWindow", error.Message);
    }

    [TestMethod]
    public void Checkpoints_is_a_switch_off_by_default()
    {
        Assert.IsFalse(ExperimentSettings.Parse([]).Checkpoints);
        var s = ExperimentSettings.Parse(["--checkpoints", "--k", "5", "--contrast"]);
        Assert.AreEqual((true, 5, true), (s.Checkpoints, s.Interaction.TopK, s.Contrast));
        Assert.IsFalse(ExperimentSettings.Parse([]).Contrast);
        Assert.Contains("--checkpoints", ExperimentSettings.Usage);
        Assert.Contains("--contrast", ExperimentSettings.Usage);
    }

    [TestMethod]
    public void Preset_builds_the_static_preset_at_its_size_and_given_flags_override_it()
    {
        var dev = ExperimentSettings.Parse(["--preset", "Dev"]);
        Assert.AreEqual((240, 320), (dev.Height, dev.Width), "without --size: the preset's NYUD size");
        var expected = MultiTaskNetworkOptions.Dev(240, 320, Tasks);
        var built = dev.NetworkOptions(Tasks);
        Assert.AreEqual(expected, built with { Tasks = expected.Tasks });

        var pascal = ExperimentSettings.Parse(["--pascal", "/nowhere", "--preset", "gpu448"]);
        Assert.AreEqual((512, 512), (pascal.Height, pascal.Width), "PASCAL's size");

        var overridden = ExperimentSettings.Parse(["--preset", "Dev", "--size", "64x64", "--width", "64", "--k", "5", "--topk-mode", "Renormalized"]).NetworkOptions(Tasks);
        var want = MultiTaskNetworkOptions.Dev(64, 64, Tasks) with
        {
            Width = 64, Interaction = MultiTaskNetworkOptions.Dev(64, 64, Tasks).Interaction with { TopK = 5, TopKMode = TopKMode.Renormalized },
        };
        Assert.AreEqual(want, overridden with { Tasks = want.Tasks });
        overridden.Validate();

        var tiny = ExperimentSettings.Parse(["--preset", "Tiny"]).NetworkOptions(Tasks);
        Assert.AreEqual((BackboneKind.ConvStem, 8), (tiny.Backbone, tiny.Interaction.MemorySlots), "Tiny's m 8, not the flag default 20");
    }

    [TestMethod]
    public void KEM_only_ablations_are_dropped_for_the_rows_without_memory()
    {
        var shared = ExperimentSettings.Parse(["--memory-update", "Gated", "--kem-blocks", "2", "--topk-axis", "Slots"]).NetworkOptions(Tasks);
        foreach (var method in Methods.All)
        {
            var configured = Methods.Configure(method, shared);
            configured.Validate();
            bool kem = method is Methods.Kem or Methods.StableKem;
            Assert.AreEqual(kem ? MemoryUpdate.Gated : MemoryUpdate.Residual, configured.Interaction.MemoryUpdate, method);
            Assert.AreEqual(kem ? 2 : 1, configured.Interaction.KemBlocks, method);
        }
    }
}
