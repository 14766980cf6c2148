using Actors.Engine.Cuda;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Tests.Runtime;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Engine.Tests.Cuda;

/// <summary>
/// Decode through CudaModelRunner (graphs and programmatic launches on, the defaults) with head dim 128, where decode
/// attention takes paged_decode_tma on compute capability 9.0 (the fixture models' head dims of 8-32 take the simple
/// kernel), against the CPU runner and the same CUDA runner with it off: 4 query heads per KV head on pages of 64 tokens
/// (the register kernel then), 7 on pages of 16 (the simple kernel then). Skips without a usable CUDA device.
/// </summary>
[Collection("cuda-engine")]
public class DecodeAttentionCudaTests
{
    /// <summary>A prefill of two sequences (300 and 150 tokens), three decode steps of both, two of the first alone.</summary>
    private static List<float[]> Steps(IModelRunner runner, int pageSize)
    {
        var a = TestModels.Tokens(300, 1);
        var b = TestModels.Tokens(150, 2);
        int[] order = Enumerable.Range(0, 40).ToArray();
        new Random(3).Shuffle(order);
        int na = (310 + pageSize - 1) / pageSize, nb = (160 + pageSize - 1) / pageSize;
        int[] pa = order[..na], pb = order[na..(na + nb)];
        var steps = new List<float[]> { runner.Forward([new(a, 0, pa, 300, LogitsRows.Last), new(b, 0, pb, 150, LogitsRows.Last)]) };
        for (int i = 0; i < 3; i++)
            steps.Add(runner.Forward([new(new[] { 5 + i }, 300 + i, pa, 301 + i, LogitsRows.Last), new(new[] { 9 + i }, 150 + i, pb, 151 + i, LogitsRows.Last)]));
        for (int i = 3; i < 5; i++)
            steps.Add(runner.Forward([new(new[] { 5 + i }, 300 + i, pa, 301 + i, LogitsRows.Last)]));
        return steps;
    }

    private static double Worst(float[] a, float[] b)
    {
        Assert.Equal(b.Length, a.Length);
        double worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]) / (1 + Math.Abs(b[i])));
        return worst;
    }

    /// <summary>Keeps the GPU test's inputs honest where there is no GPU: the configs load and the steps are valid batches.</summary>
    [Theory]
    [InlineData("llama", 4, 64)]
    [InlineData("qwen2", 7, 16)]
    public void Head_dim_128_models_run_the_steps_on_the_cpu(string family, int group, int pageSize)
    {
        var config = TestModels.ByName(family) with { HeadDim = 128, NumHeads = group, NumKvHeads = 1, MaxPositionEmbeddings = 1024 };
        using var cpu = new CpuModelRunner(config, TestModels.Weights(config), pageSize, _ => 40);
        var steps = Steps(cpu, pageSize);
        Assert.Equal(6, steps.Count);
        Assert.Equal(2 * config.VocabSize, steps[0].Length);
        Assert.Equal(config.VocabSize, steps[^1].Length);
        Assert.All(steps.SelectMany(x => x), v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>
    /// The CPU runner (f32) is the reference; the other CUDA decode kernels' distance from it is the yardstick (every
    /// CUDA step rounds its activations to bf16), and the TMA kernel, which also rounds its softmax weights to bf16 for
    /// the P V product, must stay within twice that. A wrong key, page or head in the kernel moves logits by far more.
    /// </summary>
    [Theory]
    [InlineData("llama", 4, 64)]
    [InlineData("qwen2", 7, 16)]
    public void Tma_decode_is_as_close_to_the_cpu_runner_as_the_other_decode_kernels(string family, int group, int pageSize)
    {
        CudaGpu.Require();
        var config = TestModels.ByName(family) with { HeadDim = 128, NumHeads = group, NumKvHeads = 1, MaxPositionEmbeddings = 1024 };
        List<float[]> reference;
        using (var cpu = new CpuModelRunner(config, TestModels.Weights(config), pageSize, _ => 40)) reference = Steps(cpu, pageSize);
        var steps = new List<float[]>[2];
        bool tmaTaken = false, hopper = false;
        for (int path = 0; path < 2; path++)
        {
            Assert.True(CudaModelRunner.TryOpenDevice(0, out var device, out var reason), reason);
            using var runner = CudaModelRunner.Create(device!, config, TestModels.Weights(config), new EngineOptions { PageSize = pageSize, KvPages = 40 }, 512);
            runner.UseTmaDecode = path == 0;
            if (path == 0) (tmaTaken, hopper) = (runner.DecodeUsesTma, runner.Device.ComputeMajor == 9 && runner.Device.ComputeMinor == 0);
            else Assert.False(runner.DecodeUsesTma);
            steps[path] = Steps(runner, pageSize);
        }
        // the prefill does not decode: identical
        Assert.True(steps[0][0].AsSpan().SequenceEqual(steps[1][0]), $"{family} prefill logits changed");
        for (int s = 1; s < reference.Count; s++)
        {
            double tma = Worst(steps[0][s], reference[s]), other = Worst(steps[1][s], reference[s]), between = Worst(steps[0][s], steps[1][s]);
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"{family} step {s}: against the CPU runner TMA {tma:E3}, other kernels {other:E3}; between them {between:E3} (TMA {(tmaTaken ? "taken" : "not available")})");
            Assert.True(tma <= 2 * other + 1e-3,
                $"{family} step {s}: TMA decode ({(tmaTaken ? "taken" : "not available here")}) is {tma:E3} from the CPU runner, the other kernels {other:E3}");
        }
        if (hopper && !AttentionKernels.WgmmaDisabledByEnvironment && !AttentionKernels.SimpleRequested)
            Assert.True(tmaTaken, "compute capability 9.0: decode should take paged_decode_tma");
    }
}
