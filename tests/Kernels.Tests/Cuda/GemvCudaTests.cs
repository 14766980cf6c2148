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

    [Theory]
    [InlineData(1, 64, 3)]
    [InlineData(2, 4096, 257)]
    [InlineData(4, 1032, 129)]
    public void SwiGlu_matches_unfused_reference(int rows, int k, int inter)
    {
        var gpu = Gpu.Require();
        float[] x = Gpu.RandomBf16(rows * k, 90 + k);
        float[] w = Gpu.RandomBf16(2 * inter * k, 91 + inter, 0.2f);
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dY = gpu.Device.Allocate<ushort>(rows * inter);
        using var stream = gpu.Device.CreateStream();
        Kernels.Value.SwiGlu(stream, dX, dW, dY, rows, k, inter);
        stream.Synchronize();

        // Reference: the fused projection (rows, 2·inter) rounded to bf16 as the runner stores it, then SwiGLU.
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
        TestData.Close(expected, Gpu.DownloadBf16(dY), mag, 2e-2, 1e-4, $"gemv swiglu {rows}x{k}x{inter}");
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
            string? path = Environment.GetEnvironmentVariable("ACTORS_GPU_REPORT");
            if (!string.IsNullOrEmpty(path)) File.AppendAllText(path, line + Environment.NewLine);
            TestContext.Current.SendDiagnosticMessage(line);
        }
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
    private static float[] Magnitude(float[] x, float[] w, float[] y, int rows, int k, int n)
    {
        var mag = new float[rows * n];
        MatMul.Reference(x.Select(Math.Abs).ToArray(), w.Select(Math.Abs).ToArray(), [], mag, rows, k, n);
        for (int i = 0; i < mag.Length; i++) mag[i] = Math.Abs(y[i]) + 1e-3f * mag[i];
        return mag;
    }
}
