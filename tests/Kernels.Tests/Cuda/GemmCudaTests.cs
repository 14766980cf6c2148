using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>
/// gemm_hopper.cu (compute capability 9.0 only) against the scalar MatMul and SwiGLU references on random bf16 inputs:
/// shapes that leave a row tile half empty, an odd row-tile count (one block of a cluster without a tile of its own),
/// k not a multiple of the 64-wide k-block, output columns past the last full tile, operands smaller than one TMA box;
/// and the arguments it refuses.
/// </summary>
[Collection("cuda")]
public class GemmCudaTests
{
    private static readonly Lazy<(GemmKernels? Kernels, string? Reason)> Instance = new(() =>
    {
        var kernels = GemmKernels.TryCreate(Gpu.Require().Compiler, out var reason);
        return (kernels, reason);
    });

    private static GemmKernels Kernels()
    {
        var gpu = Gpu.Require();
        var (kernels, reason) = Instance.Value;
        if (kernels is null)
        {
            // on a Hopper device the kernel must build: a failure there is a failure, not a skip
            Assert.False(gpu.Device.ComputeMajor == 9 && gpu.Device.ComputeMinor == 0 && !GemmKernels.DisabledByEnvironment,
                $"gemm_wgmma did not build on {gpu.Device.Name}: {reason}");
            Assert.Skip($"gemm_wgmma not available: {reason}");
        }
        return kernels!;
    }

    [Fact]
    public void Builds_on_compute_capability_9_with_resident_clusters()
    {
        var kernels = Kernels();
        Assert.InRange(kernels.Clusters, 1, Gpu.Require().Device.MultiprocessorCount / 2);
    }

    [Theory]
    [InlineData(1, 8, 8)]        // every operand smaller than one TMA box
    [InlineData(5, 64, 8)]
    [InlineData(300, 136, 200)]  // 3 row tiles (one cluster block without a tile), k tail, a half-empty column tile
    [InlineData(129, 520, 264)]
    [InlineData(257, 1024, 1040)]
    [InlineData(300, 136, 202)]  // output rows not a multiple of 16 bytes: stored from the registers, not by the TMA
    public void SwiGlu_matches_reference(int rows, int k, int inter)
    {
        var kernels = Kernels();
        var gpu = Gpu.Require();
        float[] x = Gpu.RandomBf16(rows * k, 300 + k);
        float[] w = Gpu.RandomBf16(2 * inter * k, 301 + inter, 2f / MathF.Sqrt(k));
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dY = gpu.Device.Allocate<ushort>(rows * inter);
        using var stream = gpu.Device.CreateStream();
        kernels.SwiGlu(stream, dX, dW, dY, rows, k, inter);
        stream.Synchronize();
        var (expected, mag) = GemvCudaTests.SwiGluReference(x, w, rows, k, inter);
        TestData.Close(expected, Gpu.DownloadBf16(dY), mag, 2e-2, 1e-4, $"gemm_wgmma swiglu {rows}x{k}x{inter}");
    }

    [Theory]
    [InlineData(1000, 200, 328, false)]
    [InlineData(129, 72, 264, true)]
    [InlineData(384, 1032, 520, true)]
    [InlineData(3, 8, 6, false)]
    public void Matmul_matches_reference(int rows, int k, int n, bool accumulate)
    {
        var kernels = Kernels();
        var gpu = Gpu.Require();
        float[] x = Gpu.RandomBf16(rows * k, 310 + k);
        float[] w = Gpu.RandomBf16(n * k, 311 + n, 2f / MathF.Sqrt(k));
        float[] y0 = Gpu.RandomBf16(rows * n, 312, 1f);
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dY = gpu.UploadBf16(y0);
        using var stream = gpu.Device.CreateStream();
        kernels.Matmul(stream, dX, dW, dY, rows, k, n, accumulate);
        stream.Synchronize();
        var product = new float[rows * n];
        MatMul.Reference(x, w, [], product, rows, k, n);
        var mag = GemvCudaTests.Magnitude(x, w, product, rows, k, n);
        var expected = new float[rows * n];
        for (int i = 0; i < expected.Length; i++)
        {
            expected[i] = accumulate ? y0[i] + product[i] : product[i];
            if (accumulate) mag[i] += Math.Abs(expected[i]);
        }
        TestData.Close(expected, Gpu.DownloadBf16(dY), mag, 1e-2, 1e-4, $"gemm_wgmma {(accumulate ? "+=" : "=")} {rows}x{k}x{n}");
    }

    [Fact]
    public void Bad_arguments_are_refused_naming_what_is_wrong()
    {
        var kernels = Kernels();
        var gpu = Gpu.Require();
        using var x = gpu.Device.Allocate<ushort>(64 * 64);
        using var w = gpu.Device.Allocate<ushort>(2 * 64 * 64);
        using var y = gpu.Device.Allocate<ushort>(64 * 64);
        using var stream = gpu.Device.CreateStream();
        var e = Assert.Throws<ArgumentException>(() => kernels.SwiGlu(stream, x, w, y, 4, 12, 8));
        Assert.Contains("k 12", e.Message);
        e = Assert.Throws<ArgumentException>(() => kernels.SwiGlu(stream, x, w, y, 4, 64, 7));
        Assert.Contains("inter 7", e.Message);
        e = Assert.Throws<ArgumentException>(() => kernels.Matmul(stream, x.Span.Slice(1, 64 * 8), w, y, 8, 64, 8));
        Assert.Contains("16-byte aligned", e.Message);
        Assert.ThrowsAny<ArgumentException>(() => kernels.SwiGlu(stream, x, w, y, 64, 64, 128)); // w holds 128 rows of the 256 needed
        Assert.ThrowsAny<ArgumentException>(() => kernels.Matmul(stream, x, w, y, 0, 64, 8));
    }
}
