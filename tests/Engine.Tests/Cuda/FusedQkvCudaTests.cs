using Actors.Engine.Cuda;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Tests.Runtime;
using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Engine.Tests.Cuda;

/// <summary>
/// The fused attention prologue (qkv_rope.cu: bias + q/k norm + RoPE + KV write in one launch per layer) against the
/// separate launches it replaced, through CudaModelRunner for every family and RoPE scaling type (prefill, chunked
/// prefill over a cached prefix and decode), and the kernel on the runner's real cos/sin tables. The CPU parity tests
/// in CudaEngineTests run the fused path too (it is the default). Skips without a usable CUDA device.
/// </summary>
[Collection("cuda-engine")]
public class FusedQkvCudaTests
{
    public static TheoryData<string, string> Variants
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var family in new[] { "llama", "qwen2", "qwen3" })
                foreach (var rope in new[] { "default", "linear", "dynamic", "yarn", "llama3" })
                    data.Add(family, rope);
            return data;
        }
    }

    /// <summary>A test model with <paramref name="rope"/> scaling; max positions 24, so steps past it exercise dynamic NTK.</summary>
    internal static ModelConfig Config(string family, string rope) => TestModels.ByName(family) with
    {
        MaxPositionEmbeddings = 24,
        RopeScaling = rope switch
        {
            "default" => null,
            "linear" => new RopeScaling("linear", 4.0),
            "dynamic" => new RopeScaling("dynamic", 2.0),
            "yarn" => new RopeScaling("yarn", 4.0, OriginalMaxPositionEmbeddings: 6),
            "llama3" => new RopeScaling("llama3", 8.0, OriginalMaxPositionEmbeddings: 6, LowFreqFactor: 1.0, HighFreqFactor: 4.0),
            _ => throw new ArgumentException(rope),
        },
    };

    /// <summary>
    /// Three steps over pages 5 tokens long: a prefill of a's first 19 tokens beside all of b; a's last 12 (a chunk over
    /// a cached prefix, past max positions) beside b's first decode; two decodes.
    /// </summary>
    private static List<float[]> Steps(IModelRunner runner)
    {
        var a = TestModels.Tokens(31, 1);
        var b = TestModels.Tokens(17, 2);
        int[] pa = [3, 9, 1, 14, 6, 20, 11], pb = [0, 2, 4, 7];
        return
        [
            runner.Forward([new(a.AsMemory(0, 19), 0, pa, 31, LogitsRows.All), new(b, 0, pb, 17, LogitsRows.All)]),
            runner.Forward([new(a.AsMemory(19), 19, pa, 31, LogitsRows.All), new(new[] { 5 }, 17, pb, 18, LogitsRows.Last)]),
            runner.Forward([new(new[] { 7 }, 31, pa, 32, LogitsRows.Last), new(new[] { 8 }, 18, pb, 19, LogitsRows.Last)]),
        ];
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Variant_models_run_the_steps_on_the_cpu(string family, string rope)
    {
        // Keeps the GPU test's inputs honest where there is no GPU: the configs load and the steps are valid batches.
        var config = Config(family, rope);
        using var cpu = new CpuModelRunner(config, TestModels.Weights(config), 5, _ => 40);
        var steps = Steps(cpu);
        Assert.Equal(36 * config.VocabSize, steps[0].Length);
        Assert.Equal(13 * config.VocabSize, steps[1].Length);
        Assert.Equal(2 * config.VocabSize, steps[2].Length);
        Assert.All(steps.SelectMany(s => s), v => Assert.True(float.IsFinite(v)));
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Fused_prologue_computes_what_the_separate_launches_compute(string family, string rope)
    {
        CudaGpu.Require();
        var config = Config(family, rope);
        var steps = new List<float[]>[2];
        for (int path = 0; path < 2; path++)
        {
            Assert.True(CudaModelRunner.TryOpenDevice(0, out var device, out var reason), reason);
            using var runner = CudaModelRunner.Create(device!, config, TestModels.Weights(config), new EngineOptions { PageSize = 5, KvPages = 40 }, 64);
            runner.UseFusedQkv = path == 0;
            steps[path] = Steps(runner);
        }
        for (int s = 0; s < 3; s++)
        {
            float[] f = steps[0][s], u = steps[1][s];
            Assert.Equal(u.Length, f.Length);
            int same = 0;
            double worst = 0;
            for (int i = 0; i < f.Length; i++)
            {
                if (f[i] == u[i]) same++;
                worst = Math.Max(worst, Math.Abs(f[i] - u[i]) / (1 + Math.Abs(u[i])));
            }
            // Same roundings step by step; only a fused multiply-add or rsqrtf placed differently by the compiler can
            // move a q/k value by a bf16 ulp.
            Assert.True(worst <= 2e-2, $"{family}/{rope} step {s}: fused vs separate worst relative difference {worst:E3} ({same} of {f.Length} identical)");
            TestContext.Current.TestOutputHelper?.WriteLine($"{family}/{rope} step {s}: {same} of {f.Length} logits identical, worst {worst:E3}");
        }
    }

    /// <summary>
    /// Decode steps with the norms and residual adds folded into the products and programmatic launches (the defaults)
    /// against the same runner with each turned off: programmatic launches must not change a bit (also from captured
    /// graphs); the folded norms differ from the norm kernel only in the order of the sum of squares.
    /// </summary>
    [Theory]
    [InlineData("llama")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    public void Folded_norms_and_programmatic_launches_compute_what_separate_launches_compute(string family)
    {
        CudaGpu.Require();
        var config = Config(family, "default");
        var paths = new (bool Fold, bool Pdl, bool Graphs)[] { (true, true, true), (true, false, true), (true, true, false), (false, false, false) };
        var steps = new List<float[]>[paths.Length];
        for (int path = 0; path < paths.Length; path++)
        {
            Assert.True(CudaModelRunner.TryOpenDevice(0, out var device, out var reason), reason);
            using var runner = CudaModelRunner.Create(device!, config, TestModels.Weights(config),
                new EngineOptions { PageSize = 5, KvPages = 40, CudaGraphs = paths[path].Graphs }, 64);
            runner.FoldNorms = paths[path].Fold;
            runner.ProgrammaticLaunch = paths[path].Pdl;
            var s = Steps(runner);
            int[] pa = [3, 9, 1, 14, 6, 20, 11];
            // one sequence decoding alone, two more steps
            s.Add(runner.Forward([new(new[] { 9 }, 32, pa, 33, LogitsRows.Last)]));
            s.Add(runner.Forward([new(new[] { 4 }, 33, pa, 34, LogitsRows.Last)]));
            steps[path] = s;
        }
        for (int path = 1; path < paths.Length; path++)
            for (int s = 0; s < steps[0].Count; s++)
            {
                float[] f = steps[0][s], u = steps[path][s];
                Assert.Equal(u.Length, f.Length);
                if (paths[path].Fold)
                {
                    Assert.True(f.AsSpan().SequenceEqual(u), $"{family} step {s}: programmatic launches / graphs changed logits ({paths[path]})");
                    continue;
                }
                double worst = 0;
                for (int i = 0; i < f.Length; i++) worst = Math.Max(worst, Math.Abs(f[i] - u[i]) / (1 + Math.Abs(u[i])));
                // the prefill steps (more than 4 rows) do not fold: only programmatic launches differ there
                if (s < 2) Assert.True(f.AsSpan().SequenceEqual(u), $"{family} step {s}: prefill logits changed");
                Assert.True(worst <= 2e-2, $"{family} step {s}: folded vs separate worst relative difference {worst:E3}");
                TestContext.Current.TestOutputHelper?.WriteLine($"{family} step {s}: folded vs separate worst {worst:E3}");
            }
    }

    [Theory]
    [InlineData("default")]
    [InlineData("linear")]
    [InlineData("dynamic")]
    [InlineData("yarn")]
    [InlineData("llama3")]
    public void Kernel_matches_reference_on_real_rope_tables(string rope)
    {
        CudaGpu.Require();
        var config = Config("qwen3", rope) with { HeadDim = 64, NumHeads = 6, NumKvHeads = 2 };
        const int tokens = 11, pageSize = 3;
        int d = config.HeadDim, half = d / 2, nh = config.NumHeads, nkv = config.NumKvHeads, width = (nh + 2 * nkv) * d;
        // Positions 20..30 of a sequence of length 31 (past max positions for dynamic NTK).
        var positions = Enumerable.Range(20, tokens).ToArray();
        var (inv, scaling) = new RopeTable(config).Frequencies(31);
        var cos = new float[tokens * half];
        var sin = new float[tokens * half];
        RopeFrequencies.CosSin(inv, scaling, positions, cos, sin);
        var rng = new Random(rope.Length);
        ushort[] Bits(int n, float scale) => Bf16.FromSingles(Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray());
        var qkv = Bits(tokens * width, 3f);
        var bias = Bits(width, 1f);
        var qn = Bits(d, 1.5f);
        var kn = Bits(d, 1.5f);
        var layout = new KvLayout(pageSize, 2, nkv, d);
        int pages = 16;
        var pool = Bits(pages * layout.PageStride, 2f);
        var table = Enumerable.Range(0, pages).Reverse().ToArray();
        var slots = positions.Select(p => table[p / pageSize] * pageSize + p % pageSize).ToArray();
        var q = new ushort[tokens * nh * d];
        var expectedPool = (ushort[])pool.Clone();
        QkvRopeKernels.Reference(qkv, tokens, width, nh, nkv, d, bias, qn, kn, 1e-6f, cos, sin, tokens, [], slots, q, expectedPool, layout, 1);

        Assert.True(CudaDevice.TryOpen(0, out var device, out var reason), reason);
        using var dev = device!;
        var kernels = new QkvRopeKernels(new KernelCompiler(dev, Path.Combine(Path.GetTempPath(), "actors-qkv-tests-" + Environment.ProcessId)));
        DeviceBuffer<T> Up<T>(T[] a) where T : unmanaged { var b = dev.Allocate<T>(a.Length); b.Upload(a); return b; }
        using var dQkv = Up(qkv);
        using var dBias = Up(bias);
        using var dQn = Up(qn);
        using var dKn = Up(kn);
        using var dCos = Up(cos);
        using var dSin = Up(sin);
        using var dSlots = Up(slots);
        using var dPool = Up(pool);
        using var dQ = dev.Allocate<ushort>(q.Length);
        using var stream = dev.CreateStream();
        kernels.Apply(stream, dQkv, tokens, width, nh, nkv, d, dBias, dQn, dKn, 1e-6f, dCos, dSin, tokens, default, dSlots, dQ, dPool, layout, 1);
        stream.Synchronize();
        Close(q, dQ.ToArray(), $"{rope} q");
        Close(expectedPool, dPool.ToArray(), $"{rope} pool");
    }

    private static void Close(ushort[] expected, ushort[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float e = Bf16.ToSingle(expected[i]), a = Bf16.ToSingle(actual[i]);
            if (Math.Abs(e - a) > 1.6e-2 * Math.Abs(e) + 1e-3)
                Assert.Fail($"{what}: element {i}: expected {e:R}, got {a:R}");
        }
    }
}
