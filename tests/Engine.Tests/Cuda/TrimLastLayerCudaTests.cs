using Actors.Engine.Cuda;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Tests.Runtime;

namespace Actors.Engine.Tests.Cuda;

/// <summary>
/// CudaModelRunner.TrimLastLayer: a prefill-shaped step with few logits rows runs its last layer's attention, o product
/// and MLP on those rows alone (after every row's K and V are written). Against the same steps with it off: the logits
/// of each step, and of the steps after it, which read the last layer's K and V that the trimmed steps wrote.
/// Skips without a usable CUDA device.
/// </summary>
[Collection("cuda-engine")]
public class TrimLastLayerCudaTests
{
    /// <summary>
    /// Pages 5 tokens long. A chunk without logits beside a whole prompt (1 logits row); a chunk over the cached prefix
    /// beside a decode (2 rows); a chunk without logits alone (none); that sequence's next chunk (1 row); a step whose
    /// rows are all asked for (not trimmed: 10 rows); three decodes together; one alone.
    /// </summary>
    internal static List<float[]> Steps(IModelRunner runner)
    {
        var a = TestModels.Tokens(31, 1);
        var b = TestModels.Tokens(17, 2);
        var c = TestModels.Tokens(40, 3);
        int[] pa = [3, 9, 1, 14, 6, 20, 11], pb = [0, 2, 4, 7], pc = [5, 8, 10, 12, 13, 15, 16, 17, 18, 19];
        return
        [
            runner.Forward([new(a.AsMemory(0, 19), 0, pa, 31, LogitsRows.None), new(b, 0, pb, 17, LogitsRows.Last)]),
            runner.Forward([new(a.AsMemory(19), 19, pa, 31, LogitsRows.Last), new(new[] { 5 }, 17, pb, 18, LogitsRows.Last)]),
            runner.Forward([new(c.AsMemory(0, 23), 0, pc, 40, LogitsRows.None)]),
            runner.Forward([new(c.AsMemory(23, 9), 23, pc, 40, LogitsRows.Last)]),
            runner.Forward([new(c.AsMemory(32, 8), 32, pc, 40, LogitsRows.All), new(new[] { 6 }, 18, pb, 19, LogitsRows.All),
                new(new[] { 7 }, 31, pa, 32, LogitsRows.Last)]),
            runner.Forward([new(new[] { 8 }, 32, pa, 33, LogitsRows.Last), new(new[] { 9 }, 19, pb, 20, LogitsRows.Last),
                new(new[] { 4 }, 40, pc, 41, LogitsRows.Last)]),
            runner.Forward([new(new[] { 2 }, 41, pc, 42, LogitsRows.Last)]),
        ];
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    public void Trimmed_last_layer_computes_what_the_whole_layer_computes(string family)
    {
        CudaGpu.Require();
        var config = FusedQkvCudaTests.Config(family, "default") with { MaxPositionEmbeddings = 64 };
        var steps = new List<float[]>[2];
        var trimmed = new long[2];
        for (int path = 0; path < 2; path++)
        {
            Assert.True(CudaModelRunner.TryOpenDevice(0, out var device, out var reason), reason);
            using var runner = CudaModelRunner.Create(device!, config, TestModels.Weights(config), new EngineOptions { PageSize = 5, KvPages = 40 }, 64);
            runner.TrimLastLayer = path == 0;
            steps[path] = Steps(runner);
            trimmed[path] = runner.TrimmedSteps;
        }
        // steps 0 to 3 have at most 4 logits rows among more rows; the rest ask for every row or are decode steps
        Assert.Equal(4, trimmed[0]);
        Assert.Equal(0, trimmed[1]);
        // The trimmed rows take the decode products (gemv.cu, norms folded) and a one-row attention launch where the
        // whole layer takes cuBLASLt and the prefill kernel over every row: bf16 roundings apart.
        AssertSameLogits(steps[0], steps[1], config.VocabSize, 2e-2, family);
    }

    /// <summary>Logits rows per step of <see cref="Steps"/>.</summary>
    internal static readonly int[] StepRows = [1, 2, 0, 1, 10, 3, 1];

    /// <summary>Each row of each step within <paramref name="tolerance"/> of the row's largest logit.</summary>
    internal static void AssertSameLogits(List<float[]> trimmed, List<float[]> whole, int vocab, double tolerance, string what)
    {
        for (int s = 0; s < StepRows.Length; s++)
        {
            float[] t = trimmed[s], w = whole[s];
            Assert.Equal(StepRows[s] * vocab, w.Length);
            Assert.Equal(w.Length, t.Length);
            for (int r = 0; r < StepRows[s]; r++)
            {
                double diff = 0, scale = 1e-6;
                for (int i = r * vocab; i < (r + 1) * vocab; i++)
                {
                    diff = Math.Max(diff, Math.Abs(t[i] - w[i]));
                    scale = Math.Max(scale, Math.Abs(w[i]));
                }
                Assert.True(diff / scale <= tolerance, $"{what} step {s} row {r}: trimmed vs whole last layer differ by {diff / scale:E3} of the largest logit");
                TestContext.Current.TestOutputHelper?.WriteLine($"{what} step {s} row {r}: {diff / scale:E3}");
            }
        }
    }
}
