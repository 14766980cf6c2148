using Actors.Engine.Cuda;
using Actors.Engine.Runtime;
using Actors.Engine.Model;
using Actors.Engine.Tests.Runtime;

namespace Actors.Engine.Tests.Cuda;

/// <summary>
/// Short chunks over a cached context (a new turn on a long session) attend as split-K decode rows, one query per token
/// with its own causal length, instead of through the prefill kernel: both paths on the same runner must give the same
/// logits for every family and RoPE type, in a step that mixes such a chunk with a decode and a longer chunk.
/// Skips without a usable CUDA device.
/// </summary>
[Collection("cuda-engine")]
public class ShortChunkCudaTests
{
    /// <summary>Three steps over pages of 5 tokens: a's first 19 tokens beside b; then a's next 12 (a short chunk over 19
    /// cached) beside b's first decode and c's first 17 tokens (a chunk too long to attend as decode rows); then decodes.</summary>
    private static List<float[]> Steps(IModelRunner runner)
    {
        var a = TestModels.Tokens(31, 1);
        var b = TestModels.Tokens(17, 2);
        var c = TestModels.Tokens(17, 3);
        int[] pa = [3, 9, 1, 14, 6, 20, 11], pb = [0, 2, 4, 7], pc = [12, 13, 15, 16];
        return
        [
            runner.Forward([new(a.AsMemory(0, 19), 0, pa, 31, LogitsRows.All), new(b, 0, pb, 17, LogitsRows.All)]),
            runner.Forward([new(a.AsMemory(19), 19, pa, 31, LogitsRows.All), new(new[] { 5 }, 17, pb, 18, LogitsRows.Last), new(c, 0, pc, 17, LogitsRows.All)]),
            runner.Forward([new(new[] { 7 }, 31, pa, 32, LogitsRows.Last), new(new[] { 8 }, 18, pb, 19, LogitsRows.Last)]),
        ];
    }

    [Theory]
    [MemberData(nameof(FusedQkvCudaTests.Variants), MemberType = typeof(FusedQkvCudaTests))]
    public void Short_chunks_as_decode_rows_compute_what_the_prefill_kernel_computes(string family, string rope)
    {
        CudaGpu.Require();
        var config = FusedQkvCudaTests.Config(family, rope);
        var steps = new List<float[]>[2];
        for (int path = 0; path < 2; path++)
        {
            Assert.True(CudaModelRunner.TryOpenDevice(0, out var device, out var reason), reason);
            using var runner = CudaModelRunner.Create(device!, config, TestModels.Weights(config), new EngineOptions { PageSize = 5, KvPages = 40 }, 64);
            runner.ShortChunkMinContext = path == 0 ? 10 : int.MaxValue;
            steps[path] = Steps(runner);
        }
        for (int s = 0; s < 3; s++)
        {
            float[] viaDecode = steps[0][s], viaPrefill = steps[1][s];
            Assert.Equal(viaPrefill.Length, viaDecode.Length);
            double worst = 0;
            for (int i = 0; i < viaDecode.Length; i++)
                worst = Math.Max(worst, Math.Abs(viaDecode[i] - viaPrefill[i]) / (1 + Math.Abs(viaPrefill[i])));
            // Different accumulation orders (split-K vs the flash kernel's tiles) move bf16 values by an ulp at most.
            Assert.True(worst <= 2e-2, $"{family}/{rope} step {s}: decode rows vs prefill kernel worst relative difference {worst:E3}");
        }
    }
}
