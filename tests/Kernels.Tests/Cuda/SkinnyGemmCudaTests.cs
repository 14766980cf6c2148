using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>
/// gemm_skinny.cu against the scalar MatMul reference (and the scalar SwiGLU) on random bf16 inputs: every row tile
/// count (1..4 tiles of 16 rows, partly filled), n that leaves a block's columns partly past the end, k whose chunks do
/// not fill the 8 splits (some blocks of a cluster get none); the residual add rounded once; the same bits on every run;
/// and the errors a bad call gets. Skips without a device of compute capability 9.0+.
/// </summary>
[Collection("cuda")]
public class SkinnyGemmCudaTests
{
    private static readonly Lazy<(SkinnyGemmKernels? Kernels, string? Reason)> Built = new(() =>
    {
        var k = SkinnyGemmKernels.TryCreate(Gpu.Require().Compiler, out var reason);
        return (k, reason);
    });

    private static SkinnyGemmKernels Kernels()
    {
        var gpu = Gpu.Require();
        var (kernels, reason) = Built.Value;
        if (kernels is not null) return kernels;
        Assert.False(gpu.Device.ComputeMajor >= 9 && !SkinnyGemmKernels.DisabledByEnvironment, $"gemm_skinny.cu did not build on {gpu.Device.Name}: {reason}");
        Assert.Skip($"gemm_skinny.cu not available: {reason}");
        return null!;
    }

    [Theory]
    [InlineData(1, 32, 8)]
    [InlineData(5, 256, 136)]     // a column block 8 columns wide
    [InlineData(16, 96, 264)]     // 3 chunks of k: five blocks of each cluster have none
    [InlineData(17, 1024, 520)]
    [InlineData(33, 4096, 128)]
    [InlineData(48, 14336, 64)]   // 56 chunks per split
    [InlineData(64, 4096, 1000)]
    public void Matmul_matches_reference(int rows, int k, int n)
    {
        var kernels = Kernels();
        var gpu = Gpu.Require();
        float[] x = Gpu.RandomBf16(rows * k, 180 + k);
        float[] w = Gpu.RandomBf16(n * k, 181 + n, 0.5f);
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dY = gpu.Device.Allocate<ushort>(rows * n);
        using var stream = gpu.Device.CreateStream();
        Assert.True(SkinnyGemmKernels.Supports(rows, k, n, dX, dW, dY));
        kernels.Matmul(stream, dX, dW, dY, rows, k, n);
        stream.Synchronize();
        var got = Gpu.DownloadBf16(dY);

        var expected = new float[rows * n];
        MatMul.Reference(x, w, [], expected, rows, k, n);
        TestData.Close(expected, got, GemvCudaTests.Magnitude(x, w, expected, rows, k, n), 1e-2, 1e-4, $"skinny {rows}x{k}x{n}");

        // the split sums meet in a fixed order: the same bits again
        dY.Upload(new ushort[rows * n]);
        kernels.Matmul(stream, dX, dW, dY, rows, k, n);
        stream.Synchronize();
        Assert.Equal(got, Gpu.DownloadBf16(dY));
    }

    /// <summary>y = bf16(y + x wᵀ): the residual stream updated in place, the product added in f32 and rounded once.</summary>
    [Theory]
    [InlineData(7, 512, 72)]
    [InlineData(40, 4096, 256)]
    public void Accumulating_matmul_adds_into_y_rounded_once(int rows, int k, int n)
    {
        var kernels = Kernels();
        var gpu = Gpu.Require();
        float[] x = Gpu.RandomBf16(rows * k, 190 + k);
        float[] w = Gpu.RandomBf16(n * k, 191 + n, 0.5f);
        float[] y0 = Gpu.RandomBf16(rows * n, 192, 4f);
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dY = gpu.UploadBf16(y0);
        using var stream = gpu.Device.CreateStream();
        kernels.Matmul(stream, dX, dW, dY, rows, k, n, accumulate: true);
        stream.Synchronize();

        var product = new float[rows * n];
        MatMul.Reference(x, w, [], product, rows, k, n);
        var mag = GemvCudaTests.Magnitude(x, w, product, rows, k, n);
        var expected = new float[rows * n];
        for (int i = 0; i < expected.Length; i++)
        {
            expected[i] = y0[i] + product[i];
            mag[i] += Math.Abs(expected[i]);
        }
        TestData.Close(expected, Gpu.DownloadBf16(dY), mag, 1e-2, 1e-4, $"skinny accumulate {rows}x{k}x{n}");
    }

    [Theory]
    [InlineData(5, 512, 72)]     // a gate block of 64 columns, 8 past inter
    [InlineData(30, 4096, 200)]
    [InlineData(64, 1024, 64)]
    public void SwiGlu_matches_unfused_reference(int rows, int k, int inter)
    {
        var kernels = Kernels();
        var gpu = Gpu.Require();
        float[] x = Gpu.RandomBf16(rows * k, 200 + k);
        float[] w = Gpu.RandomBf16(2 * inter * k, 201 + inter, 0.2f);
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(w);
        using var dY = gpu.Device.Allocate<ushort>(rows * inter);
        using var stream = gpu.Device.CreateStream();
        kernels.SwiGlu(stream, dX, dW, dY, rows, k, inter);
        stream.Synchronize();
        var (expected, mag) = GemvCudaTests.SwiGluReference(x, w, rows, k, inter);
        TestData.Close(expected, Gpu.DownloadBf16(dY), mag, 2e-2, 1e-4, $"skinny swiglu {rows}x{k}x{inter}");
    }

    [Fact]
    public void Bad_calls_name_what_is_wrong()
    {
        var kernels = Kernels();
        var gpu = Gpu.Require();
        using var dX = gpu.Device.Allocate<ushort>(65 * 128);
        using var dW = gpu.Device.Allocate<ushort>(64 * 128);
        using var dY = gpu.Device.Allocate<ushort>(65 * 64);
        using var stream = gpu.Device.CreateStream();
        Assert.Equal("rows", Assert.Throws<ArgumentOutOfRangeException>(() => kernels.Matmul(stream, dX, dW, dY, 65, 128, 64)).ParamName);
        Assert.Equal("k", Assert.Throws<ArgumentOutOfRangeException>(() => kernels.Matmul(stream, dX, dW, dY, 4, 120, 64)).ParamName);
        Assert.Equal("n", Assert.Throws<ArgumentOutOfRangeException>(() => kernels.Matmul(stream, dX, dW, dY, 4, 128, 60)).ParamName);
        Assert.Equal("inter", Assert.Throws<ArgumentOutOfRangeException>(() => kernels.SwiGlu(stream, dX, dW, dY, 4, 128, 20)).ParamName);
        Assert.Equal("w", Assert.Throws<ArgumentException>(() => kernels.SwiGlu(stream, dX, dW, dY, 4, 128, 64)).ParamName); // 2 x 64 rows of w
        Assert.Contains("overlap", Assert.Throws<ArgumentException>(() => kernels.Matmul(stream, dX, dW, dX.Span.Slice(8), 4, 128, 64)).Message);
        Assert.False(SkinnyGemmKernels.Supports(4, 128, 64, dX.Span.Slice(1), dW, dY));
    }
}
