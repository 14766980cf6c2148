using Actors.Engine.Cuda;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Kernels.Cuda;

namespace Actors.Engine.Tests.Cuda;

/// <summary>
/// The runner tunes its prefill's qkv and gate/up products when it is created (CublasLtMatmul.Autotune), for a model
/// large enough to be tuned: one layer of the Llama-3-8B shape with 8192-token steps. Skips without a usable CUDA device.
/// </summary>
[Collection("cuda-engine")]
public class PrefillTuningCudaTests
{
    [Fact]
    public void Runner_tunes_its_prefill_products_when_created_and_they_give_the_heuristic_picks_logits()
    {
        CudaGpu.Require();
        if (Environment.GetEnvironmentVariable("ACTORS_CUBLASLT_AUTOTUNE") == "0") Assert.Skip("tuning is switched off by the environment (ACTORS_CUBLASLT_AUTOTUNE=0)");
        const int rows = 8192, hidden = 4096, inter = 14336, vocab = 1024, page = 64;
        var config = new ModelConfig
        {
            ModelType = "llama", Family = ModelFamily.Llama, HiddenSize = hidden, IntermediateSize = inter, NumLayers = 1,
            NumHeads = 32, NumKvHeads = 8, HeadDim = 128, VocabSize = vocab, RmsNormEps = 1e-5f, RopeTheta = 500000,
            MaxPositionEmbeddings = 16384, Source = "one Llama-3-8B layer",
        };
        Assert.True(CudaDevice.TryOpen(0, out var device, out var reason), reason);
        using var dev = device!;
        var compiler = new KernelCompiler(dev);
        var ek = new EngineKernels(compiler);
        using var weights = CudaWeights.Random(dev, config, ek, seed: 11);
        var options = new EngineOptions
        {
            PageSize = page, KvPages = rows / page + 1, MaxBatchTokens = rows, PrefillChunkTokens = rows, MaxSequences = 1,
            ContextLength = rows + page,
        };
        using var runner = CudaModelRunner.Create(dev, weights, options, options.ContextLength!.Value, compiler, ek);

        // tuned at creation: qkv (32 + 2 x 8 heads of 128) and gate/up (2 x 14336), not the accumulating o and down
        var tuned = runner.Matmul.Tunings.Select(t => (t.Rows, t.K, t.N)).OrderBy(t => t.N).ToArray();
        Assert.Equal([(rows, hidden, 6144), (rows, hidden, 2 * inter)], tuned);
        Assert.All(runner.Matmul.Tunings, t => Assert.True(t.ChosenMs > 0 && t.ChosenMs <= t.HeuristicMs, $"{t}"));
        Assert.True(runner.Matmul.UsesTunedAlgorithm(rows, hidden, 6144), "qkv plan tuned");

        // a prefill with the tuned algorithms (and a shorter one, over AutotuneMinRows, which reuses them) against the
        // heuristic picks
        var rng = new Random(3);
        var tokens = Enumerable.Range(0, rows).Select(_ => rng.Next(vocab)).ToArray();
        var table = Enumerable.Range(0, rows / page + 1).ToArray();
        float[] Prefill(int n) => runner.Forward([new ForwardChunk(tokens.AsMemory(0, n), 0, table, n, LogitsRows.Last)]);
        var withTuned = Prefill(rows);
        var shorterTuned = Prefill(rows - 100);
        Assert.True(rows - 100 >= runner.Matmul.AutotuneMinRows);
        Assert.True(runner.Matmul.UsesTunedAlgorithm(rows - 100, hidden, 2 * inter), "gate/up plan of the shorter prefill reuses the tuning");
        runner.Matmul.UseTunedAlgorithms = false;
        var withHeuristic = Prefill(rows);
        var shorterHeuristic = Prefill(rows - 100);
        Assert.Equal(2, runner.Matmul.Tunings.Count);
        Close(withHeuristic, withTuned, $"{rows} tokens");
        Close(shorterHeuristic, shorterTuned, $"{rows - 100} tokens");
    }

    // another algorithm sums the products in another order: the logits agree within bf16 rounding, not bit for bit
    private static void Close(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        float scale = expected.Max(MathF.Abs);
        Assert.True(scale > 0 && float.IsFinite(scale), $"{what}: logits scale {scale}");
        for (int i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 2e-2f * scale, $"{what}: logit {i} heuristic {expected[i]} tuned {actual[i]} (scale {scale})");
    }
}
