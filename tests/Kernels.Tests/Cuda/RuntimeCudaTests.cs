using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>Device, memory, NVRTC, cuBLASLt and graph plumbing on a real device.</summary>
[Collection("cuda")]
public class RuntimeCudaTests
{
    [Fact]
    public void Device_reports_its_properties_and_memory()
    {
        var gpu = Gpu.Require();
        var d = gpu.Device;
        Assert.False(string.IsNullOrWhiteSpace(d.Name));
        Assert.True(d.ComputeMajor >= 8);
        Assert.Equal($"sm_{d.ComputeMajor}{d.ComputeMinor}", d.Architecture);
        Assert.True(d.MultiprocessorCount > 0);
        var (free, total) = d.MemoryInfo();
        Assert.True(free > 0 && free <= total, $"free {free}, total {total}");
        Assert.True(total > 0 && total <= d.TotalMemory + (1L << 30), $"cuMemGetInfo total {total}, cuDeviceTotalMem {d.TotalMemory}");
    }

    [Fact]
    public void Buffers_round_trip_through_sync_and_pinned_async_copies()
    {
        var gpu = Gpu.Require();
        float[] data = TestData.Random(1000, 1);
        using var buffer = gpu.Device.Allocate<float>(1003);
        buffer.Clear();
        buffer.Upload(data, offset: 3);
        var back = buffer.ToArray();
        Assert.Equal([0f, 0f, 0f], back[..3]);
        Assert.Equal(data, back[3..]);

        using var stream = gpu.Device.CreateStream();
        using var pinnedIn = gpu.Device.AllocatePinned<float>(500);
        using var pinnedOut = gpu.Device.AllocatePinned<float>(500);
        data.AsSpan(0, 500).CopyTo(pinnedIn.Span);
        buffer.UploadAsync(pinnedIn, 500, stream, offset: 100);
        buffer.DownloadAsync(pinnedOut, 500, stream, offset: 100);
        stream.Synchronize();
        Assert.Equal(data[..500], pinnedOut.Span.ToArray());

        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Upload(data, offset: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Download(new float[10], offset: 1000));
    }

    [Fact]
    public void Out_of_memory_is_a_typed_exception()
    {
        var gpu = Gpu.Require();
        var e = Assert.Throws<CudaException>(() => gpu.Device.Allocate<byte>(gpu.Device.TotalMemory * 4));
        Assert.True(e.IsOutOfMemory, e.Message);
        Assert.Equal("cuMemAlloc_v2", e.Call);
    }

    [Fact]
    public void Nvrtc_cache_answers_the_second_compile()
    {
        var gpu = Gpu.Require();
        string dir = Path.Combine(Path.GetTempPath(), "actors-cache-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            const string src = "extern \"C\" __global__ void twice(float* x) { x[threadIdx.x] *= 2.f; }";
            var first = new KernelCompiler(gpu.Device, dir);
            byte[] a = first.Compile(src, "twice.cu");
            Assert.Equal((1, 0), (first.Compilations, first.CacheHits));
            Assert.Single(Directory.GetFiles(dir, "*.cubin"));

            var second = new KernelCompiler(gpu.Device, dir);
            byte[] b = second.Compile(src, "twice.cu");
            Assert.Equal((0, 1), (second.Compilations, second.CacheHits));
            Assert.Equal(a, b);

            // a different specialisation is a different entry
            second.Compile(src, "twice.cu", ["-DWIDTH=4"]);
            Assert.Equal(1, second.Compilations);
            Assert.Equal(2, Directory.GetFiles(dir, "*.cubin").Length);

            // the cached image loads and runs
            var module = gpu.Device.LoadModule("test:twice:" + first.CacheKey(src, []), () => b);
            using var x = gpu.Upload<float>([1f, 2f, 3f]);
            using var stream = gpu.Device.CreateStream();
            module.Function("twice").Launch(stream, (1, 1, 1), 3, 0, x.Pointer);
            stream.Synchronize();
            Assert.Equal([2f, 4f, 6f], x.ToArray());
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Nvrtc_errors_carry_the_compiler_log()
    {
        var gpu = Gpu.Require();
        string dir = Path.Combine(Path.GetTempPath(), "actors-cache-test-" + Guid.NewGuid().ToString("N"));
        var compiler = new KernelCompiler(gpu.Device, dir);
        var e = Assert.Throws<NvrtcException>(() =>
            compiler.Compile("extern \"C\" __global__ void broken(float* x) { x[0] = not_declared_anywhere; }", "broken.cu"));
        Assert.Equal("nvrtcCompileProgram", e.Call);
        Assert.Contains("not_declared_anywhere", e.Log);
        Assert.Contains("broken.cu", e.Log);
        Assert.Contains("not_declared_anywhere", e.Message);
        Assert.False(Directory.Exists(dir) && Directory.GetFiles(dir, "*.cubin").Length > 0, "a failed compile must not be cached");
    }

    /// <summary>y = bf16(y + x · wᵀ): the residual add in the GEMM epilogue (the prefill's o and down projections).</summary>
    [Theory]
    [InlineData(7, 264, 40)]
    [InlineData(300, 4096, 136)]
    public void Cublaslt_accumulating_matmul_adds_into_y(int rows, int k, int n)
    {
        var gpu = Gpu.Require();
        float[] x = Gpu.RandomBf16(rows * k, 70 + k);
        float[] w = Gpu.RandomBf16(n * k, 71 + n, 0.5f);
        float[] r = Gpu.RandomBf16(rows * n, 72, 8f);
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dY = gpu.UploadBf16(r);
        using var stream = gpu.Device.CreateStream();
        gpu.Matmul.Bf16(stream, dX, dW, dY, rows, k, n, accumulate: true);
        stream.Synchronize();
        var prod = new float[rows * n];
        MatMul.Reference(x, w, [], prod, rows, k, n);
        var mag = new float[rows * n];
        MatMul.Reference(x.Select(Math.Abs).ToArray(), w.Select(Math.Abs).ToArray(), [], mag, rows, k, n);
        var expected = new float[rows * n];
        for (int i = 0; i < expected.Length; i++)
        {
            expected[i] = r[i] + prod[i];
            // cuBLASLt may round the product to bf16 before the add (as separate kernels do): up to half a bf16 step of
            // |product| (0.2 %), which a cancelling residual does not shrink; a missing or doubled add is off by |r|
            mag[i] = Math.Abs(expected[i]) + 0.5f * Math.Abs(prod[i]) + 1e-3f * mag[i];
        }
        TestData.Close(expected, Gpu.DownloadBf16(dY), mag, 1e-2, 1e-4, $"accumulating matmul {rows}x{k}x{n}");
    }

    [Theory]
    [InlineData(7, 264, 40)]
    [InlineData(1, 128, 1000)]   // decode-shaped: one row
    [InlineData(33, 4096, 72)]
    public void Cublaslt_bf16_matmul_matches_reference(int rows, int k, int n)
    {
        var gpu = Gpu.Require();
        float[] x = Gpu.RandomBf16(rows * k, 60 + k);
        float[] w = Gpu.RandomBf16(n * k, 61 + n, 0.5f);
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dY = gpu.Device.Allocate<ushort>(rows * n);
        using var stream = gpu.Device.CreateStream();
        gpu.Matmul.Bf16(stream, dX, dW, dY, rows, k, n);
        stream.Synchronize();

        var expected = new float[rows * n];
        MatMul.Reference(x, w, [], expected, rows, k, n);
        // magnitude: Σ|x||w| per output, the scale of f32 accumulation error; plus bf16 output rounding of |y|
        var ax = x.Select(Math.Abs).ToArray();
        var aw = w.Select(Math.Abs).ToArray();
        var mag = new float[rows * n];
        MatMul.Reference(ax, aw, [], mag, rows, k, n);
        var got = Gpu.DownloadBf16(dY);
        for (int i = 0; i < mag.Length; i++) mag[i] = Math.Abs(expected[i]) + 1e-3f * mag[i];
        TestData.Close(expected, got, mag, 1e-2, 1e-4, $"matmul {rows}x{k}x{n}");
    }

    [Fact]
    public void Autotuned_matmul_picks_a_timed_candidate_and_matches_the_heuristic_pick()
    {
        var gpu = Gpu.Require();
        const int rows = 300, k = 512, n = 640;
        float[] x = Gpu.RandomBf16(rows * k, 62);
        float[] w = Gpu.RandomBf16(n * k, 63, 0.5f);
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dY = gpu.Device.Allocate<ushort>(rows * n);
        using var stream = gpu.Device.CreateStream();
        using var tuned = new CublasLtMatmul(gpu.Device) { Autotune = true, AutotuneMinRows = 256, AutotuneMinFlops = 0, AutotuneHeatMs = 20 };
        tuned.Bf16(stream, dX, dW, dY, rows, k, n);
        stream.Synchronize();
        var t = Assert.Single(tuned.Tunings);
        Assert.Equal((rows, k, n), (t.Rows, t.K, t.N));
        Assert.InRange(t.Candidates, 1, tuned.AutotuneCandidates);
        Assert.True(t.ChosenMs > 0 && t.ChosenMs <= t.HeuristicMs, $"chosen #{t.Chosen} {t.ChosenMs} ms, heuristic {t.HeuristicMs} ms");
        var got = Gpu.DownloadBf16(dY);

        // the heuristic pick's product (another algorithm may sum in another order: compare within f32 rounding)
        gpu.Matmul.Bf16(stream, dX, dW, dY, rows, k, n);
        stream.Synchronize();
        var heuristic = Gpu.DownloadBf16(dY);
        TestData.Close(heuristic, got, 1e-2, 1e-3, "autotuned vs heuristic");

        Assert.True(tuned.UsesTunedAlgorithm(rows, k, n));

        // another row count of the same (k, n) reuses the tuned algorithm without timing again, also inside graph
        // capture (where nothing may be timed); below AutotuneMinRows the heuristic pick is taken
        tuned.Bf16(stream, dX, dW, dY, 100, k, n);
        Assert.False(tuned.UsesTunedAlgorithm(100, k, n));
        using var graph = CudaGraph.Capture(stream, s => tuned.Bf16(s, dX, dW, dY, 299, k, n));
        graph.Launch(stream);
        stream.Synchronize();
        Assert.True(tuned.UsesTunedAlgorithm(299, k, n));
        Assert.Single(tuned.Tunings);
        Assert.False(stream.IsCapturing);
        var reused = Gpu.DownloadBf16(dY);
        gpu.Matmul.Bf16(stream, dX, dW, dY, 299, k, n);
        stream.Synchronize();
        var heuristic299 = Gpu.DownloadBf16(dY);
        TestData.Close(heuristic299[..(299 * n)], reused[..(299 * n)], 1e-2, 1e-3, "reused tuned algorithm vs heuristic, 299 rows");

        // ClearPlans forgets the tuned algorithms too: the next large call tunes again
        tuned.ClearPlans();
        tuned.Bf16(stream, dX, dW, dY, rows, k, n);
        stream.Synchronize();
        Assert.Equal(2, tuned.Tunings.Count);
    }

    [Fact]
    public void Step_profile_charges_each_interval_to_its_label()
    {
        var gpu = Gpu.Require();
        using var stream = gpu.Device.CreateStream();
        using var profile = new StepProfile(gpu.Device);
        Assert.Throws<InvalidOperationException>(() => profile.Mark(stream, "before start"));
        const int rows = 64, k = 1024, n = 2048;
        using var dX = gpu.UploadBf16(Gpu.RandomBf16(rows * k, 64));
        using var dW = gpu.UploadBf16(Gpu.RandomBf16(n * k, 65));
        using var dY = gpu.Device.Allocate<ushort>(rows * n);
        using var dNorm = gpu.UploadBf16(Gpu.RandomBf16(k, 66));
        // Both kernels once before profiling: the first use of a kernel module compiles it (NVRTC, seconds with an empty
        // cache), and host time between two marks is charged to the interval.
        gpu.Matmul.Bf16(stream, dX, dW, dY, rows, k, n);
        gpu.Elementwise.RmsNorm(stream, dX, dNorm, dX, rows, k, 1e-5f);
        stream.Synchronize();
        for (int round = 0; round < 2; round++)
        {
            profile.Reset();
            profile.Start(stream);
            for (int i = 0; i < 3; i++)
            {
                gpu.Matmul.Bf16(stream, dX, dW, dY, rows, k, n);
                profile.Mark(stream, "matmul");
                gpu.Elementwise.RmsNorm(stream, dX, dNorm, dX, rows, k, 1e-5f);
                profile.Mark(stream, "norm");
            }
            var totals = profile.Totals();
            Assert.Equal(["matmul", "norm"], totals.Select(t => t.Label));
            Assert.All(totals, t => Assert.Equal(3, t.Count));
            Assert.All(totals, t => Assert.True(t.Ms > 0 && t.Ms < 1000, $"{t.Label}: {t.Ms} ms"));
        }
    }

    [Fact]
    public void Graph_replay_equals_direct_launches_and_reads_fresh_inputs()
    {
        var gpu = Gpu.Require();
        const int rows = 3, dim = 256, inter = 384;
        float[] x1 = Gpu.RandomBf16(rows * dim, 70), x2 = Gpu.RandomBf16(rows * dim, 71);
        float[] weight = Gpu.RandomBf16(dim, 72);
        float[] wGateUp = Gpu.RandomBf16(2 * inter * dim, 73, 0.2f);
        using var dX = gpu.Device.Allocate<ushort>(rows * dim);
        using var dW = gpu.UploadBf16(weight);
        using var dWgu = gpu.UploadBf16(wGateUp);
        using var dNorm = gpu.Device.Allocate<ushort>(rows * dim);
        using var dGu = gpu.Device.Allocate<ushort>(rows * 2 * inter);
        using var dY = gpu.Device.Allocate<ushort>(rows * inter);
        using var stream = gpu.Device.CreateStream();

        // one MLP-shaped step: norm, fused gate/up projection (cuBLASLt), SwiGLU
        void Step(CudaStream s)
        {
            gpu.Elementwise.RmsNorm(s, dX, dW, dNorm, rows, dim, 1e-5f);
            gpu.Matmul.Bf16(s, dNorm, dWgu, dGu, rows, dim, 2 * inter);
            gpu.Elementwise.SwiGlu(s, dGu.Span, dGu.Span.Slice(inter), dY, rows, inter, 2 * inter, inter);
        }

        ushort[] Direct(float[] x)
        {
            dX.Upload(Bf16.FromSingles(x));
            Step(stream);
            stream.Synchronize();
            return dY.ToArray();
        }

        ushort[] expected1 = Direct(x1), expected2 = Direct(x2);
        Assert.NotEqual(expected1, expected2);

        dY.Clear();
        using var graph = CudaGraph.Capture(stream, Step);
        stream.Synchronize();
        Assert.All(dY.ToArray(), v => Assert.Equal(0, v)); // capture records, it does not run

        dX.Upload(Bf16.FromSingles(x1));
        graph.Launch(stream);
        stream.Synchronize();
        Assert.Equal(expected1, dY.ToArray());

        dX.Upload(Bf16.FromSingles(x2));
        graph.Launch(stream);
        stream.Synchronize();
        Assert.Equal(expected2, dY.ToArray());
    }

    [Fact]
    public void Events_time_work_on_a_stream()
    {
        var gpu = Gpu.Require();
        using var stream = gpu.Device.CreateStream();
        using var start = new CudaEvent(gpu.Device);
        using var end = new CudaEvent(gpu.Device);
        using var big = gpu.Device.Allocate<float>(1 << 22);
        using var pinned = gpu.Device.AllocatePinned<float>(1 << 22);
        start.Record(stream);
        big.UploadAsync(pinned, 1 << 22, stream);
        end.Record(stream);
        float ms = CudaEvent.ElapsedMilliseconds(start, end);
        Assert.True(ms > 0 && ms < 10_000, $"{ms} ms");
    }

    [Fact]
    public void A_failed_capture_leaves_the_stream_usable()
    {
        var gpu = Gpu.Require();
        using var stream = gpu.Device.CreateStream();
        Assert.Throws<InvalidOperationException>(() => CudaGraph.Capture(stream, _ => throw new InvalidOperationException("boom")));
        using var b = gpu.Upload<float>([1f]);
        using var pinned = gpu.Device.AllocatePinned<float>(1);
        b.DownloadAsync(pinned, 1, stream);
        stream.Synchronize();
        Assert.Equal(1f, pinned.Span[0]);
    }

    [Fact]
    public void Power_meter_finds_the_card_and_counts_the_energy_of_real_work()
    {
        var gpu = Gpu.Require();
        Assert.Matches(@"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$", gpu.Device.PciBusId);
        Assert.True(PowerMeter.TryOpen(gpu.Device, out var opened, out var reason), reason);
        var meter = opened!;
        using (meter)
        {
            Assert.Equal(gpu.Device.PciBusId, meter.PciBusId);
            double limit = meter.PowerLimitWatts();
            Assert.InRange(limit, 50, 2000);
            Assert.InRange(meter.SmClockMhz(), 1, 5000);
            Assert.InRange(meter.TemperatureCelsius(), 1, 120);

            // products (of zeros, which draw far less than random data) back to back for about a second: the counter must
            // move by what a working card draws, at most its limit (plus the counter's step), and never backwards
            const int m = 4096, k = 4096, n = 4096;
            using var x = gpu.Device.Allocate<ushort>((long)m * k);
            using var w = gpu.Device.Allocate<ushort>((long)n * k);
            using var y = gpu.Device.Allocate<ushort>((long)m * n);
            x.Clear();
            w.Clear();
            using var stream = gpu.Device.CreateStream();
            gpu.Matmul.Bf16(stream, x, w, y, m, k, n);
            stream.Synchronize();
            double before = meter.EnergyJoules();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            double previous = before;
            while (clock.Elapsed.TotalSeconds < 1.0)
            {
                for (int i = 0; i < 20; i++) gpu.Matmul.Bf16(stream, x, w, y, m, k, n);
                stream.Synchronize();
                double now = meter.EnergyJoules();
                Assert.True(now >= previous, $"energy counter went back from {previous} J to {now} J");
                previous = now;
            }
            double seconds = clock.Elapsed.TotalSeconds, joules = meter.EnergyJoules() - before;
            // read around the work, the counter is off by up to a step (~100 ms of power on an H200)
            double watts = joules / seconds;
            Assert.InRange(watts, 20, limit * 1.25);
            double step = meter.CounterStepMilliseconds(TimeSpan.FromMilliseconds(300));
            Assert.InRange(step, 0.001, 300);

            // read between the counter's steps: the products' steady power, within the card's limit
            var steady = meter.MeasureSteady(() => { for (int i = 0; i < 10; i++) gpu.Matmul.Bf16(stream, x, w, y, m, k, n); stream.Synchronize(); },
                TimeSpan.FromSeconds(0.3), TimeSpan.FromSeconds(1));
            Assert.InRange(steady.Watts, 20, limit * 1.05);
            Assert.True(steady.Units > 0 && steady.Seconds > 0 && steady.SecondsPerUnit > 0, steady.ToString());
            Assert.Equal(steady.Watts * steady.SecondsPerUnit, steady.JoulesPerUnit, 9);
            double tflops = 10 * 2.0 * m * n * k / steady.SecondsPerUnit / 1e12;
            Console.WriteLine($"power meter: {watts:F0} W over {seconds:F2} s of products read around them (limit {limit:F0} W, " +
                              $"{meter.PowerWatts():F0} W now), energy counter step {step:F1} ms; steady: {steady.Watts:F0} W over {steady.Seconds:F2} s, " +
                              $"{tflops:F0} TFLOP/s, {steady.Watts / (tflops * 1e12) * 1e12:F3} pJ/FLOP on zeros");
        }
        Assert.Throws<ObjectDisposedException>(() => meter.EnergyJoules());
    }
}
