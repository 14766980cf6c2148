using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>
/// gemv.cu against the scalar MatMul reference (and the scalar SwiGLU) on random bf16 inputs: every row count it takes,
/// odd n (a warp's second column past the end), k that is not a multiple of the 64-piece step; and its time beside
/// cuBLASLt on the Llama-3-8B decode shapes (with ACTORS_GPU_TIMINGS=1).
/// </summary>
[Collection("cuda")]
public class GemvCudaTests
{
    private static readonly Lazy<GemvKernels> Kernels = new(() => new GemvKernels(Gpu.Require().Compiler));

    [Theory]
    [InlineData(1, 64, 1)]
    [InlineData(1, 4096, 1001)]
    [InlineData(2, 264, 37)]
    [InlineData(3, 1032, 515)]
    [InlineData(4, 14336, 96)]
    public void Matmul_matches_reference(int rows, int k, int n)
    {
        var gpu = Gpu.Require();
        float[] x = Gpu.RandomBf16(rows * k, 80 + k);
        float[] w = Gpu.RandomBf16(n * k, 81 + n, 0.5f);
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dY = gpu.Device.Allocate<ushort>(rows * n);
        using var stream = gpu.Device.CreateStream();
        Assert.True(GemvKernels.Supports(rows, k, dX, dW, dY));
        Kernels.Value.Matmul(stream, dX, dW, dY, rows, k, n);
        stream.Synchronize();

        var expected = new float[rows * n];
        MatMul.Reference(x, w, [], expected, rows, k, n);
        TestData.Close(expected, Gpu.DownloadBf16(dY), Magnitude(x, w, expected, rows, k, n), 1e-2, 1e-4, $"gemv {rows}x{k}x{n}");
    }

    /// <summary>
    /// The folded decode product: RMSNorm of x first, then bias and the residual added in place (y is the residual
    /// buffer), each rounded to bf16 as the separate add_rmsnorm / bias / residual kernels store it.
    /// </summary>
    [Theory]
    [InlineData(1, 64, 5, true, false, false)]
    [InlineData(1, 4096, 1001, true, false, true)]
    [InlineData(2, 1032, 37, true, true, true)]
    [InlineData(3, 4096, 515, false, true, true)]
    [InlineData(4, 4096, 96, true, true, false)]
    [InlineData(4, 14336, 33, false, false, true)]
    [InlineData(4, 6144, 33, true, false, true)] // 48 KiB of normalised rows beside the kernel's static scratch: the launch opts in
    public void Matmul_with_norm_bias_and_residual_matches_the_unfused_roundings(int rows, int k, int n, bool norm, bool bias, bool residual)
    {
        var gpu = Gpu.Require();
        const float eps = 1e-5f;
        float[] x = Gpu.RandomBf16(rows * k, 100 + k, 3f);
        float[] nw = Gpu.RandomBf16(k, 101, 1f).Select(v => Bf16.ToSingle(Bf16.FromSingle(1f + 0.5f * v))).ToArray();
        float[] w = Gpu.RandomBf16(n * k, 102 + n, 0.5f);
        float[] b = Gpu.RandomBf16(n, 103, 2f);
        float[] r = Gpu.RandomBf16(rows * n, 104, 4f);
        using var dX = gpu.UploadBf16(x);
        using var dNorm = gpu.UploadBf16(nw);
        using var dW = gpu.UploadBf16(w);
        using var dB = gpu.UploadBf16(b);
        using var dY = gpu.UploadBf16(residual ? r : new float[rows * n]);
        using var stream = gpu.Device.CreateStream();
        Kernels.Value.Matmul(stream, dX, dW, dY, rows, k, n, norm: norm ? dNorm.Span : default, eps: eps,
            bias: bias ? dB.Span : default, residual: residual ? dY.Span : default);
        stream.Synchronize();

        float[] xn = norm ? Normalised(x, nw, rows, k, eps) : x;
        var acc = new float[rows * n];
        MatMul.Reference(xn, w, [], acc, rows, k, n);
        var mag = Magnitude(xn, w, acc, rows, k, n);
        var expected = new float[rows * n];
        for (int i = 0; i < expected.Length; i++)
        {
            float y = Round(acc[i]);
            if (bias) y = Round(y + b[i % n]);
            if (residual) y = Round(r[i] + y);
            expected[i] = y;
            mag[i] += Math.Abs(y) + (bias ? Math.Abs(b[i % n]) * 4e-3f : 0) + (residual ? Math.Abs(r[i]) * 4e-3f : 0);
        }
        TestData.Close(expected, Gpu.DownloadBf16(dY), mag, 1e-2, 1e-4, $"gemv norm={norm} bias={bias} residual={residual} {rows}x{k}x{n}");
    }

    [Theory]
    [InlineData(1, 64, 3, false)]
    [InlineData(2, 4096, 257, false)]
    [InlineData(4, 1032, 129, false)]
    [InlineData(1, 4096, 77, true)]
    [InlineData(3, 1032, 129, true)]
    public void SwiGlu_matches_unfused_reference(int rows, int k, int inter, bool norm)
    {
        var gpu = Gpu.Require();
        float[] x = Gpu.RandomBf16(rows * k, 90 + k);
        float[] w = Gpu.RandomBf16(2 * inter * k, 91 + inter, 0.2f);
        float[] nw = Gpu.RandomBf16(k, 92, 1f).Select(v => Bf16.ToSingle(Bf16.FromSingle(1f + 0.5f * v))).ToArray();
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dNorm = gpu.UploadBf16(nw);
        using var dY = gpu.Device.Allocate<ushort>(rows * inter);
        using var stream = gpu.Device.CreateStream();
        Kernels.Value.SwiGlu(stream, dX, dW, dY, rows, k, inter, norm: norm ? dNorm.Span : default, eps: 1e-6f);
        stream.Synchronize();
        if (norm) x = Normalised(x, nw, rows, k, 1e-6f);

        var (expected, mag) = SwiGluReference(x, w, rows, k, inter);
        TestData.Close(expected, Gpu.DownloadBf16(dY), mag, 2e-2, 1e-4, $"gemv swiglu {rows}x{k}x{inter}");
    }

    /// <summary>
    /// Reference of the MLP's gate/up product and SwiGLU: the fused projection x · wᵀ (rows, 2·inter; gate rows of w
    /// first, then up) rounded to bf16 as the runner stores it, then silu(gate) · up; with each output's error scale.
    /// </summary>
    internal static (float[] Expected, float[] Magnitude) SwiGluReference(float[] x, float[] w, int rows, int k, int inter)
    {
        var gu = new float[rows * 2 * inter];
        MatMul.Reference(x, w, [], gu, rows, k, 2 * inter);
        var guMag = Magnitude(x, w, gu, rows, k, 2 * inter);
        Bf16.Round(gu);
        var expected = new float[rows * inter];
        var mag = new float[rows * inter];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < inter; j++)
            {
                float g = gu[r * 2 * inter + j], u = gu[r * 2 * inter + inter + j];
                float silu = g / (1f + MathF.Exp(-g));
                expected[r * inter + j] = silu * u;
                // the products' error (|g|, |u| magnitudes) carried through silu(g)·u, plus the output's rounding
                mag[r * inter + j] = Math.Abs(silu * u) + Math.Abs(u) * guMag[r * 2 * inter + j] * 1e-2f + Math.Abs(silu) * guMag[r * 2 * inter + inter + j] * 1e-2f;
            }
        return (expected, mag);
    }

    [Fact]
    public void Unsupported_shapes_are_refused_with_the_reason()
    {
        var gpu = Gpu.Require();
        using var x = gpu.Device.Allocate<ushort>(5 * 12);
        using var w = gpu.Device.Allocate<ushort>(4 * 12);
        using var y = gpu.Device.Allocate<ushort>(5 * 4);
        using var stream = gpu.Device.CreateStream();
        Assert.False(GemvKernels.Supports(5, 8, x, w, y));
        Assert.False(GemvKernels.Supports(1, 12, x, w, y));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Kernels.Value.Matmul(stream, x, w, y, 1, 12, 4));
        Assert.Equal("k", e.ParamName);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => Kernels.Value.Matmul(stream, x, w, y, 5, 8, 4));
        Assert.Equal("rows", e.ParamName);
    }

    /// <summary>
    /// The qkv product with the attention prologue folded in: RMSNorm, product, bias, RoPE, q out and K/V into the pool,
    /// against the scalar product rounded to bf16 and then QkvRopeKernels.Reference (the separate prologue's reference).
    /// Pool pages the step does not write must keep their bits.
    /// </summary>
    [Theory]
    [InlineData(1, 256, 4, 2, 64, false, true)]
    [InlineData(2, 1032, 4, 2, 128, true, false)]
    [InlineData(4, 4096, 8, 2, 128, true, true)]
    [InlineData(3, 264, 6, 3, 10, false, true)]
    public void QkvRope_matches_the_product_then_the_prologue(int rows, int k, int heads, int kvHeads, int d, bool bias, bool positions)
    {
        var gpu = Gpu.Require();
        if (!Kernels.Value.SupportsQkvRope(d)) Assert.Skip("gemv.cu built without 2 columns per warp (ACTORS_GEMV_COLS): no folded RoPE");
        const float eps = 1e-6f;
        int n = (heads + 2 * kvHeads) * d, half = d / 2, tableRows = 40;
        var layout = new KvLayout(5, 2, kvHeads, d);
        const int layer = 1, pages = 6;
        var rng = new Random(k + d);
        float[] x = Gpu.RandomBf16(rows * k, 120 + k, 2f);
        float[] nw = Gpu.RandomBf16(k, 121, 1f).Select(v => Bf16.ToSingle(Bf16.FromSingle(1f + 0.5f * v))).ToArray();
        float[] w = Gpu.RandomBf16(n * k, 122, 0.5f);
        ushort[] b = bias ? Bf16.FromSingles(Gpu.RandomBf16(n, 123, 3f)) : [];
        float[] cos = Enumerable.Range(0, tableRows * half).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        float[] sin = Enumerable.Range(0, tableRows * half).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        int[] pos = positions ? Enumerable.Range(0, rows).Select(_ => rng.Next(tableRows)).ToArray() : [];
        int[] slots = Enumerable.Range(0, pages * layout.PageSize).OrderBy(_ => rng.Next()).Take(rows).ToArray();
        ushort[] pool = Bf16.FromSingles(Gpu.RandomBf16(pages * layout.PageStride, 124, 1f));

        using var dX = gpu.UploadBf16(x);
        using var dNorm = gpu.UploadBf16(nw);
        using var dW = gpu.UploadBf16(w);
        using var dB = gpu.Upload<ushort>(bias ? b : new ushort[1]);
        using var dCos = gpu.Upload<float>(cos);
        using var dSin = gpu.Upload<float>(sin);
        using var dPos = gpu.Upload<int>(positions ? pos : new int[1]);
        using var dSlots = gpu.Upload<int>(slots);
        using var dQ = gpu.Device.Allocate<ushort>(rows * heads * d);
        using var dPool = gpu.Upload<ushort>(pool);
        using var stream = gpu.Device.CreateStream();
        Kernels.Value.QkvRope(stream, dX, dNorm, eps, dW, bias ? dB.Span : default, rows, k, heads, kvHeads, d, dCos, dSin, tableRows,
            positions ? dPos.Span : default, dSlots, dQ, dPool, layout, layer);
        stream.Synchronize();

        var qkv = new float[rows * n];
        MatMul.Reference(Normalised(x, nw, rows, k, eps), w, [], qkv, rows, k, n);
        var q = new ushort[rows * heads * d];
        var expectedPool = (ushort[])pool.Clone();
        QkvRopeKernels.Reference(Bf16.FromSingles(qkv), rows, n, heads, kvHeads, d, b, [], [], eps, cos, sin, tableRows, pos, slots, q, expectedPool, layout, layer);
        // a bf16 step of the product (0.4 %) moves both outputs of a rotated pair: tolerance from the row's largest value
        double scale = qkv.Max(Math.Abs) + (bias ? b.Max(v => Math.Abs(Bf16.ToSingle(v))) : 0);
        TestData.Close(Bf16.ToSingles(q), Gpu.DownloadBf16(dQ), 1e-2, 1e-2 * scale, $"q of qkv+rope {rows}x{k}, {heads}/{kvHeads} heads of {d}");
        TestData.Close(Bf16.ToSingles(expectedPool), Bf16.ToSingles(dPool.ToArray()), 1e-2, 1e-2 * scale, $"pool of qkv+rope {rows}x{k}");
        var got = dPool.ToArray();
        int written = 0;
        for (int i = 0; i < pool.Length; i++) if (got[i] != pool[i]) written++;
        Assert.InRange(written, 1, rows * 2 * kvHeads * d); // only the rows' K and V slots of the layer change
    }

    /// <summary>
    /// Programmatic dependent launch: a chain of 40 products, each reading the one before (normalised, so values stay
    /// bounded), launched with and without the attribute, eagerly and from a captured graph, gives the same bits. A
    /// kernel reading its input before the previous kernel finished would not.
    /// </summary>
    [Fact]
    public void Programmatic_chain_computes_what_plain_launches_compute()
    {
        var gpu = Gpu.Require();
        const int k = 4096, rows = 2, steps = 40;
        float[] x = Gpu.RandomBf16(rows * k, 110, 2f);
        float[] nw = Gpu.RandomBf16(k, 111, 1f).Select(v => 1f + 0.25f * v).ToArray();
        float[] w = Gpu.RandomBf16(k * k, 112, 0.05f);
        using var dNorm = gpu.UploadBf16(nw);
        using var dW = gpu.UploadBf16(w);
        using var a = gpu.Device.Allocate<ushort>(rows * k);
        using var b = gpu.Device.Allocate<ushort>(rows * k);
        using var stream = gpu.Device.CreateStream();
        var xBits = Bf16.FromSingles(x);
        void Chain(CudaStream s)
        {
            for (int i = 0; i < steps; i++)
            {
                var (src, dst) = i % 2 == 0 ? (a, b) : (b, a);
                Kernels.Value.Matmul(s, src, dW, dst, rows, k, k, norm: dNorm, eps: 1e-5f, residual: i % 3 == 0 ? dst.Span : default);
            }
        }
        ushort[] Run(bool programmatic, bool graph)
        {
            stream.ProgrammaticLaunch = programmatic;
            a.Upload(xBits);
            b.Upload(new ushort[rows * k]);
            if (graph)
            {
                using var g = CudaGraph.Capture(stream, Chain);
                g.Launch(stream);
            }
            else Chain(stream);
            stream.Synchronize();
            return a.ToArray();
        }
        var plain = Run(false, false);
        Assert.Contains(plain, v => v != 0);
        Assert.Equal(plain, Run(true, false));
        Assert.Equal(plain, Run(true, true));
        Assert.Equal(plain, Run(false, true));
        TestContext.Current.SendDiagnosticMessage($"programmatic launch supported: {stream.SupportsProgrammaticLaunch}");
    }

    /// <summary>Decode shapes of Llama-3-8B: qkv, o, gate/up (+SwiGLU), down, lm head; GB/s of each beside cuBLASLt.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void Timing_beside_cublaslt(int rows)
    {
        if (Environment.GetEnvironmentVariable("ACTORS_GPU_TIMINGS") != "1") Assert.Skip("timings run only with ACTORS_GPU_TIMINGS=1");
        var gpu = Gpu.Require();
        var shapes = new (string Name, int K, int N)[] { ("qkv", 4096, 6144), ("o", 4096, 4096), ("gate_up", 4096, 28672), ("down", 14336, 4096), ("lm_head", 4096, 128256) };
        using var stream = gpu.Device.CreateStream();
        foreach (var (name, k, n) in shapes)
        {
            using var x = gpu.Device.Allocate<ushort>((long)rows * k);
            using var w = gpu.Device.Allocate<ushort>((long)n * k);
            using var y = gpu.Device.Allocate<ushort>((long)rows * n);
            w.Upload(new ushort[(long)n * k]); // zeros: the time does not depend on the values
            x.Upload(new ushort[(long)rows * k]);
            double bytes = (double)n * k * 2;
            float ours = Time(stream, s => Kernels.Value.Matmul(s, x, w, y, rows, k, n));
            float lt = Time(stream, s => gpu.Matmul.Bf16(s, x, w, y, rows, k, n));
            string line = $"gemv {name} rows {rows} ({n}x{k}): ours {ours * 1000:F1} us = {bytes / (ours * 1e-3) / 1e9:F0} GB/s; cuBLASLt {lt * 1000:F1} us = {bytes / (lt * 1e-3) / 1e9:F0} GB/s";
            if (name == "gate_up")
            {
                using var act = gpu.Device.Allocate<ushort>((long)rows * (n / 2));
                float fused = Time(stream, s => Kernels.Value.SwiGlu(s, x, w, act, rows, k, n / 2));
                line += $"; fused SwiGLU {fused * 1000:F1} us";
            }
            if (name == "o")
            {
                // back-to-back products as in a decode step: each kernel's ramp and the previous one's tail
                void Chain(CudaStream s) { for (int i = 0; i < 16; i++) Kernels.Value.Matmul(s, x, w, y, rows, k, n); }
                float plain = Time(stream, Chain) / 16;
                stream.ProgrammaticLaunch = true;
                float programmatic = Time(stream, Chain) / 16;
                stream.ProgrammaticLaunch = false;
                line += $"; 16 in a row: plain {plain * 1000:F1} us each, programmatic {programmatic * 1000:F1} us each";
            }
            string? path = Environment.GetEnvironmentVariable("ACTORS_GPU_REPORT");
            if (!string.IsNullOrEmpty(path)) File.AppendAllText(path, line + Environment.NewLine);
            TestContext.Current.SendDiagnosticMessage(line);
        }
    }

    private static float Round(float v) => Bf16.ToSingle(Bf16.FromSingle(v));

    /// <summary>x / sqrt(mean(x²) + eps) · weight per row, rounded to bf16 (the add_rmsnorm kernel's output).</summary>
    private static float[] Normalised(float[] x, float[] weight, int rows, int k, float eps)
    {
        var y = new float[x.Length];
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < k; i++) ss += (double)x[r * k + i] * x[r * k + i];
            float inv = (float)(1.0 / Math.Sqrt(ss / k + eps));
            for (int i = 0; i < k; i++) y[r * k + i] = Round(x[r * k + i] * inv * weight[i]);
        }
        return y;
    }

    private static float Time(CudaStream stream, Action<CudaStream> work)
    {
        for (int i = 0; i < 3; i++) work(stream);
        using var start = new CudaEvent(stream.Device);
        using var end = new CudaEvent(stream.Device);
        start.Record(stream);
        for (int i = 0; i < 20; i++) work(stream);
        end.Record(stream);
        return CudaEvent.ElapsedMilliseconds(start, end) / 20;
    }

    // The scale of f32 accumulation error per output (Σ|x||w|) and of the bf16 output rounding (|y|).
    internal static float[] Magnitude(float[] x, float[] w, float[] y, int rows, int k, int n)
    {
        var mag = new float[rows * n];
        MatMul.Reference(x.Select(Math.Abs).ToArray(), w.Select(Math.Abs).ToArray(), [], mag, rows, k, n);
        for (int i = 0; i < mag.Length; i++) mag[i] = Math.Abs(y[i]) + 1e-3f * mag[i];
        return mag;
    }
}
