using Actors.Engine.Cuda;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Kernels.Cuda;

namespace Actors.Engine.Tests.Cuda;

/// <summary>
/// The prefill's products on one layer of the Llama-3-8B shape: the runner tunes its qkv and gate/up products when it is
/// created (CublasLtMatmul.Autotune, 8192-token steps), and the fused gate/up + SwiGLU GEMM gives the unfused path's
/// logits. Skips without a usable CUDA device.
/// </summary>
[Collection("cuda-engine")]
public class PrefillTuningCudaTests
{
    [Fact]
    public void Runner_tunes_its_prefill_products_when_created_and_they_give_the_heuristic_picks_logits()
    {
        CudaGpu.Require();
        if (Environment.GetEnvironmentVariable("ACTORS_CUBLASLT_AUTOTUNE") == "0") Assert.Skip("tuning is switched off by the environment (ACTORS_CUBLASLT_AUTOTUNE=0)");
        const int rows = 8192;
        using var layer = new OneLayer(rows);
        var runner = layer.Runner;
        // the gate/up product through cuBLASLt, as this test checks its tuning: with the fused GEMM available the runner
        // tunes it (and makes room for its output) only now
        runner.UseFusedSwiGlu = false;
        Assert.Equal(rows, runner.GateUpRows);

        // tuned: qkv (32 + 2 x 8 heads of 128) and gate/up (2 x 14336), not the accumulating o and down
        var tuned = runner.Matmul.Tunings.Select(t => (t.Rows, t.K, t.N)).OrderBy(t => t.N).ToArray();
        const int hidden = OneLayer.Hidden, inter = OneLayer.Inter;
        Assert.Equal([(rows, hidden, 6144), (rows, hidden, 2 * inter)], tuned);
        Assert.All(runner.Matmul.Tunings, t => Assert.True(t.ChosenMs > 0 && t.ChosenMs <= t.HeuristicMs, $"{t}"));
        Assert.True(runner.Matmul.UsesTunedAlgorithm(rows, hidden, 6144), "qkv plan tuned");

        // a prefill with the tuned algorithms (and a shorter one, over AutotuneMinRows, which reuses them) against the
        // heuristic picks
        var rng = new Random(3);
        var tokens = Enumerable.Range(0, rows).Select(_ => rng.Next(OneLayer.Vocab)).ToArray();
        var table = Enumerable.Range(0, rows / OneLayer.Page + 1).ToArray();
        float[] Prefill(int n) => runner.Forward([new ForwardChunk(tokens.AsMemory(0, n), 0, table, n, LogitsRows.Last)]);
        var withTuned = Prefill(rows);
        var shorterTuned = Prefill(rows - 100);
        Assert.True(rows - 100 >= runner.Matmul.AutotuneMinRows);
        Assert.True(runner.Matmul.UsesTunedAlgorithm(CudaModelRunner.MatmulBucket(rows - 100), hidden, 2 * inter), "gate/up plan of the shorter prefill reuses the tuning");
        runner.Matmul.UseTunedAlgorithms = false;
        var withHeuristic = Prefill(rows);
        var shorterHeuristic = Prefill(rows - 100);
        Assert.Equal(2, runner.Matmul.Tunings.Count);
        Close(withHeuristic, withTuned, $"{rows} tokens");
        Close(shorterHeuristic, shorterTuned, $"{rows - 100} tokens");
    }

    /// <summary>
    /// Prefill steps of FusedSwiGluMinRows rows or more run the gate/up product with SwiGLU in its epilogue (gemm_hopper.cu)
    /// on compute capability 9.0; teacher-forced logits of every position match the unfused path's (cuBLASLt, then the
    /// SwiGLU kernel) within bf16 rounding, for a chunk that leaves the last row tile part empty and one that continues
    /// a cached prefix; below the threshold the unfused kernels run.
    /// </summary>
    [Fact]
    public void Fused_gate_up_swiglu_gives_the_unfused_logits()
    {
        CudaGpu.Require();
        const int rows = 2048;
        using var layer = new OneLayer(rows);
        var runner = layer.Runner;
        if (runner.FusedSwiGluUnavailableReason is { } why)
        {
            Assert.False(layer.Device.ComputeMajor == 9 && layer.Device.ComputeMinor == 0 && Environment.GetEnvironmentVariable("ACTORS_GEMM_WGMMA") != "0",
                $"the fused gate/up + SwiGLU GEMM did not build on {layer.Device.Name}: {why}");
            Assert.Skip($"fused gate/up + SwiGLU not available: {why}");
        }
        Assert.True(runner.UseFusedSwiGlu);
        // the unfused product's output buffer covers only the steps below the fused GEMM's threshold
        Assert.Equal(CudaModelRunner.FusedSwiGluMinRows - 1, runner.GateUpRows);
        var rng = new Random(5);
        var tokens = Enumerable.Range(0, rows).Select(_ => rng.Next(OneLayer.Vocab)).ToArray();
        var table = Enumerable.Range(0, rows / OneLayer.Page + 1).ToArray();
        const int first = 1100; // a first chunk of 1100 rows (9 row tiles: a cluster's second block has none), then the rest over its cache
        float[] Run(bool fused, int from, int to)
        {
            runner.UseFusedSwiGlu = fused;
            using var profile = new StepProfile(layer.Device);
            runner.Profile = profile;
            try
            {
                var logits = runner.Forward([new ForwardChunk(tokens.AsMemory(from, to - from), from, table, to, LogitsRows.All)]);
                var labels = profile.Totals().Select(t => t.Label).ToArray();
                bool expectFused = fused && to - from >= CudaModelRunner.FusedSwiGluMinRows;
                Assert.Equal(expectFused, labels.Contains("gate/up projection + swiglu"));
                Assert.Equal(!expectFused, labels.Contains("swiglu"));
                return logits;
            }
            finally { runner.Profile = null; }
        }
        var fusedHead = Run(true, 0, first);
        var fusedTail = Run(true, first, rows);
        var unfusedHead = Run(false, 0, first);
        Assert.Equal(rows, runner.GateUpRows); // grown when the fused path was turned off
        var unfusedTail = Run(false, first, rows);
        Close(unfusedHead, fusedHead, $"positions 0 .. {first - 1}", "unfused", "fused");
        Close(unfusedTail, fusedTail, $"positions {first} .. {rows - 1}", "unfused", "fused");
        var small = Run(true, 0, CudaModelRunner.FusedSwiGluMinRows - 1); // below the threshold: the unfused kernels
        Assert.Equal(CudaModelRunner.FusedSwiGluMinRows - 1, runner.GateUpRows); // the growth given back with the fused path on
        Assert.Equal(CudaModelRunner.FusedSwiGluMinRows - 1, small.Length / OneLayer.Vocab);
    }

    /// <summary>
    /// The runner makes the cuBLASLt plan of every row bucket when it is created, so steps of any row count make no plan
    /// (no request pays a plan or a kernel's first launch), and a step over its bucket's padded rows gives the logits of
    /// the same step over its own row count (rows past the step's are scratch; no row reads another).
    /// </summary>
    [Fact]
    public void Runner_prepares_every_product_plan_when_created_and_padded_rows_leave_the_logits()
    {
        CudaGpu.Require();
        const int rows = 1024;
        using var layer = new OneLayer(rows);
        var runner = layer.Runner;
        // buckets of 16 to 64 rows, 32 to 512, 64 to 1024: 4 + 14 + 8 row counts for qkv, o and down; gate/up below the
        // fused GEMM's threshold where it serves the rest
        int gateUp = runner.FusedSwiGluUnavailableReason is null ? 4 + 14 : 4 + 14 + 8;
        Assert.Equal(3 * (4 + 14 + 8) + gateUp, runner.PreparedProductPlans);
        Assert.Equal(runner.PreparedProductPlans, runner.Matmul.PlanCount);
        Assert.Equal([16, 16, 32, 64, 96, 512, 576, 1024], new[] { 1, 16, 17, 64, 65, 512, 513, 1024 }.Select(CudaModelRunner.MatmulBucket));

        var rng = new Random(9);
        var tokens = Enumerable.Range(0, rows).Select(_ => rng.Next(OneLayer.Vocab)).ToArray();
        var table = Enumerable.Range(0, rows / OneLayer.Page + 1).ToArray();
        // the last row's logits (a 1-row logits product: gemv, no plan); it reads every layer's rows
        float[] Prefill(int n) => runner.Forward([new ForwardChunk(tokens.AsMemory(0, n), 0, table, n, LogitsRows.Last)]);
        foreach (int n in (int[])[5, 17, 63, 100, 333, 511, 700, 1000])
        {
            runner.PadProductRows = true;
            int before = runner.Matmul.PlanCount;
            var padded = Prefill(n);
            Assert.True(before == runner.Matmul.PlanCount, $"a step of {n} rows made {runner.Matmul.PlanCount - before} plans");
            runner.PadProductRows = false;
            var exact = Prefill(n);
            Close(exact, padded, $"{n} rows", "exact rows", "padded rows");
        }
    }

    // another algorithm sums the products in another order: the logits agree within bf16 rounding, not bit for bit
    private static void Close(float[] expected, float[] actual, string what, string expectedName = "heuristic", string actualName = "tuned")
    {
        Assert.Equal(expected.Length, actual.Length);
        float scale = expected.Max(MathF.Abs);
        Assert.True(scale > 0 && float.IsFinite(scale), $"{what}: logits scale {scale}");
        for (int i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 2e-2f * scale, $"{what}: logit {i} {expectedName} {expected[i]} {actualName} {actual[i]} (scale {scale})");
    }

    /// <summary>One Llama-3-8B layer (random weights, a small vocabulary) on device 0 with steps of up to `rows` tokens.</summary>
    private sealed class OneLayer : IDisposable
    {
        public const int Hidden = 4096, Inter = 14336, Vocab = 1024, Page = 64;
        private readonly CudaWeights _weights;

        public OneLayer(int rows)
        {
            var config = new ModelConfig
            {
                ModelType = "llama", Family = ModelFamily.Llama, HiddenSize = Hidden, IntermediateSize = Inter, NumLayers = 1,
                NumHeads = 32, NumKvHeads = 8, HeadDim = 128, VocabSize = Vocab, RmsNormEps = 1e-5f, RopeTheta = 500000,
                MaxPositionEmbeddings = 16384, Source = "one Llama-3-8B layer",
            };
            Assert.True(CudaDevice.TryOpen(0, out var device, out var reason), reason);
            Device = device!;
            var compiler = new KernelCompiler(Device);
            var ek = new EngineKernels(compiler);
            _weights = CudaWeights.Random(Device, config, ek, seed: 11);
            var options = new EngineOptions
            {
                PageSize = Page, KvPages = rows / Page + 1, MaxBatchTokens = rows, PrefillChunkTokens = rows, MaxSequences = 1,
                ContextLength = rows + Page,
            };
            Runner = CudaModelRunner.Create(Device, _weights, options, options.ContextLength!.Value, compiler, ek);
            // the one layer is the last: trimmed to the logits row, it would run none of the prefill products under test
            Runner.TrimLastLayer = false;
        }

        public CudaDevice Device { get; }
        public CudaModelRunner Runner { get; }

        public void Dispose()
        {
            Runner.Dispose();
            _weights.Dispose();
            Device.Dispose();
        }
    }
}
