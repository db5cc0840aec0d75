using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using Microsoft.ML.Kem;
using TorchSharp;
using static TorchSharp.torch;

namespace Kem.Tests;

/// <summary>
/// No hidden GPU waits in library code. TorchSharp's implicit number → <see cref="Tensor"/> conversion makes a CPU tensor;
/// handed to an op such as where on a CUDA tensor, ATen copies it over with a blocking copy that waits for every kernel
/// queued so far. On the CPU nothing shows it, so the IL is scanned for the conversion instead.
/// </summary>
[TestClass]
public sealed class HostSyncTests
{
    [TestMethod]
    public void Library_code_never_converts_a_number_or_array_to_a_tensor_implicitly()
    {
        foreach (var assembly in new[] { typeof(ScalarArithmetic).Assembly, typeof(Microsoft.ML.MultiTaskCatalog).Assembly })
        {
            var calls = ImplicitTensorConversions(assembly.Location);
            Assert.IsEmpty(calls, $"{assembly.GetName().Name} converts to Tensor implicitly in: {string.Join(", ", calls)}. " +
                "Each makes a CPU tensor (a blocking host→GPU copy in ops like where); use ScalarArithmetic.Else or a Scalar overload.");
        }
    }

    [TestMethod]
    public void The_scan_finds_the_conversion_where_it_is()
    {
        var calls = ImplicitTensorConversions(typeof(HostSyncTests).Assembly.Location);
        CollectionAssert.AreEquivalent(new[] { $"{nameof(HostSyncTests)}.{nameof(WhereWithANumber)}" }, calls.ToArray());
    }

    /// <summary>The pattern the scan must catch (never called).</summary>
    private static Tensor WhereWithANumber(Tensor condition, Tensor values) => torch.where(condition, values, 0f);

    [TestMethod]
    public void Else_is_where_with_the_number_in_the_values_dtype_and_gradients_only_where_kept()
    {
        using var scope = NewDisposeScope();
        var condition = tensor(new[] { true, false, true, false });
        var values = tensor(new[] { 1.5f, -2f, float.NaN, 4f }).requires_grad_();
        var kept = values.Else(condition, 255);
        CollectionAssert.AreEqual(new[] { 1.5f, 255f, float.NaN, 255f }, kept.data<float>().ToArray());
        kept.sum().backward();
        CollectionAssert.AreEqual(new[] { 1f, 0f, 1f, 0f }, values.grad!.data<float>().ToArray());

        var half = tensor(new[] { 1f, 2f }).to(ScalarType.BFloat16);
        var filled = half.Else(tensor(new[] { false, true }), -1);
        Assert.AreEqual(ScalarType.BFloat16, filled.dtype);
        CollectionAssert.AreEqual(new[] { -1f, 2f }, filled.to(ScalarType.Float32).data<float>().ToArray());
    }

    /// <summary>"Type.Method" of every method body in the assembly that calls Tensor.op_Implicit (number, Scalar or array → Tensor).</summary>
    private static List<string> ImplicitTensorConversions(string path)
    {
        var found = new List<string>();
        using var pe = new PEReader(File.OpenRead(path));
        var md = pe.GetMetadataReader();
        foreach (var typeHandle in md.TypeDefinitions)
        {
            var type = md.GetTypeDefinition(typeHandle);
            foreach (var methodHandle in type.GetMethods())
            {
                var method = md.GetMethodDefinition(methodHandle);
                if (method.RelativeVirtualAddress == 0) continue;
                var il = pe.GetMethodBody(method.RelativeVirtualAddress).GetILReader();
                if (CallTargets(ref il).Any(target => IsImplicitTensorConversion(md, target)))
                    found.Add($"{OuterName(md, type)}.{md.GetString(method.Name)}");
            }
        }
        return found;
    }

    private static string OuterName(MetadataReader md, TypeDefinition type)
    {
        // a lambda or iterator lives in a nested compiler type: name the type that wrote it
        while (type.GetDeclaringType() is { IsNil: false } outer) type = md.GetTypeDefinition(outer);
        return md.GetString(type.Name);
    }

    private static bool IsImplicitTensorConversion(MetadataReader md, EntityHandle target)
    {
        if (target.Kind == HandleKind.MethodSpecification) target = md.GetMethodSpecification((MethodSpecificationHandle)target).Method;
        if (target.Kind != HandleKind.MemberReference) return false;               // TorchSharp's methods are references from here
        var member = md.GetMemberReference((MemberReferenceHandle)target);
        return md.GetString(member.Name) == "op_Implicit"
            && member.Parent.Kind == HandleKind.TypeReference
            && md.GetString(md.GetTypeReference((TypeReferenceHandle)member.Parent).Name) == nameof(Tensor);
    }

    /// <summary>The method tokens of every call, callvirt, newobj and ldftn in one IL body.</summary>
    private static List<EntityHandle> CallTargets(ref BlobReader il)
    {
        var targets = new List<EntityHandle>();
        while (il.RemainingBytes > 0)
        {
            int code = il.ReadByte();
            var op = code == 0xFE ? TwoByteOpCodes[il.ReadByte()] : OneByteOpCodes[code];
            switch (op.OperandType)
            {
                case OperandType.InlineNone: break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar: il.ReadByte(); break;
                case OperandType.InlineVar: il.ReadInt16(); break;
                case OperandType.InlineI8 or OperandType.InlineR: il.ReadInt64(); break;
                case OperandType.InlineSwitch: { int cases = il.ReadInt32(); il.Offset += 4 * cases; break; }
                case OperandType.InlineMethod: targets.Add(MetadataTokens.EntityHandle(il.ReadInt32())); break;
                default: il.ReadInt32(); break;                                       // the other operands are 4 bytes
            }
        }
        return targets;
    }

    private static readonly OpCode[] OneByteOpCodes = new OpCode[256], TwoByteOpCodes = new OpCode[256];

    static HostSyncTests()
    {
        foreach (var field in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            var op = (OpCode)field.GetValue(null)!;
            (op.Size == 1 ? OneByteOpCodes : TwoByteOpCodes)[(ushort)op.Value & 0xFF] = op;
        }
    }
}
