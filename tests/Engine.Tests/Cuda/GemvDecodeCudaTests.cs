using Actors.Engine.Cuda;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Tests.Runtime;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Engine.Tests.Cuda;

/// <summary>
/// Decode batches of 5 to 8 sequences take gemv.cu (norms, bias, RoPE and residual adds folded in) since
/// GemvKernels.MaxRows is 8; before, cuBLASLt and the separate norm / prologue kernels served them. Each family's decode
/// steps of 1, 5, 6 and 8 sequences through both paths of one CUDA runner, against the CPU runner (f32): the gemv path
/// must be as close to it as the cuBLASLt path is (both round every activation to bf16). Skips without a usable CUDA
/// device.
/// </summary>
[Collection("cuda-engine")]
public class GemvDecodeCudaTests
{
    /// <summary>A prefill of 8 sequences (one step), then two decode steps of each batch size in turn.</summary>
    private static List<float[]> Steps(IModelRunner runner)
    {
        const int seqs = 8;
        var prompts = Enumerable.Range(0, seqs).Select(i => TestModels.Tokens(3 + 2 * i, 20 + i)).ToArray();
        var tables = Enumerable.Range(0, seqs).Select(i => Enumerable.Range(i * 16, 16).ToArray()).ToArray();
        var steps = new List<float[]> { runner.Forward([.. prompts.Select((p, i) => new ForwardChunk(p, 0, tables[i], p.Length, LogitsRows.Last))]) };
        var lengths = prompts.Select(p => p.Length).ToArray();
        foreach (int batch in (int[])[1, 5, 6, 8])
            for (int step = 0; step < 2; step++)
            {
                steps.Add(runner.Forward([.. Enumerable.Range(0, batch).Select(i =>
                    new ForwardChunk(new[] { (7 * i + step + batch) % 90 }, lengths[i], tables[i], lengths[i] + 1, LogitsRows.Last))]));
                for (int i = 0; i < batch; i++) lengths[i]++;
            }
        return steps;
    }

    private static double Worst(float[] a, float[] b)
    {
        Assert.Equal(b.Length, a.Length);
        double worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]) / (1 + Math.Abs(b[i])));
        return worst;
    }

    /// <summary>Keeps the GPU test's inputs honest where there is no GPU: the steps are valid batches of the sizes named.</summary>
    [Fact]
    public void The_steps_run_on_the_cpu_runner()
    {
        var config = TestModels.Llama;
        using var cpu = new CpuModelRunner(config, TestModels.Weights(config), 4, _ => 128);
        var steps = Steps(cpu);
        Assert.Equal([8, 1, 1, 5, 5, 6, 6, 8, 8], steps.Select(s => s.Length / config.VocabSize));
        Assert.All(steps.SelectMany(x => x), v => Assert.True(float.IsFinite(v)));
    }

    [Theory]
    [MemberData(nameof(TestModels.Families), MemberType = typeof(TestModels))]
    public void Decode_batches_up_to_8_through_gemv_are_as_close_to_the_cpu_runner_as_through_cublaslt(string family)
    {
        CudaGpu.Require();
        var config = TestModels.ByName(family);
        List<float[]> reference;
        using (var cpu = new CpuModelRunner(config, TestModels.Weights(config), 4, _ => 128)) reference = Steps(cpu);
        var runs = new List<float[]>[2];
        for (int path = 0; path < 2; path++)
        {
            Assert.True(CudaModelRunner.TryOpenDevice(0, out var device, out var reason), reason);
            using var runner = CudaModelRunner.Create(device!, config, TestModels.Weights(config), new EngineOptions { PageSize = 4, KvPages = 128, MaxSequences = 8 }, 64);
            Assert.Equal(GemvKernels.MaxRows, runner.GemvMaxRows);
            runner.GemvMaxRows = path == 0 ? GemvKernels.MaxRows : 4; // 4: batches of 5-8 through cuBLASLt, as before
            runs[path] = Steps(runner);
        }
        Assert.Equal(reference.Count, runs[0].Count);
        for (int s = 1; s < reference.Count; s++)
        {
            double gemv = Worst(runs[0][s], reference[s]), cublas = Worst(runs[1][s], reference[s]);
            TestContext.Current.SendDiagnosticMessage($"{family} step {s}: against the CPU runner gemv {gemv:E3}, cuBLASLt {cublas:E3}");
            Assert.True(gemv <= 2 * cublas + 1e-3, $"{family} step {s} ({runs[0][s].Length / config.VocabSize} sequences): gemv path {gemv:E3} from the CPU runner, cuBLASLt path {cublas:E3}");
        }
    }
}
