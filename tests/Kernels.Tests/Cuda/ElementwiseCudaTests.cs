using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>elementwise.cu against the CPU references on random bf16 inputs of odd sizes.</summary>
[Collection("cuda")]
public class ElementwiseCudaTests
{
    [Fact]
    public void Embedding_gathers_rows_and_zeroes_out_of_range_ids()
    {
        var gpu = Gpu.Require();
        const int vocab = 37, hidden = 77;
        int[] ids = [5, 0, 36, 5, -1, 37, 12, 1000, 20, 3, 3, 36, 0];
        float[] table = Gpu.RandomBf16(vocab * hidden, 1);
        using var dTable = gpu.UploadBf16(table);
        using var dIds = gpu.Upload<int>(ids);
        using var dOut = gpu.Device.Allocate<ushort>(ids.Length * hidden);
        using var stream = gpu.Device.CreateStream();
        gpu.Elementwise.EmbeddingGather(stream, dTable, vocab, hidden, dIds, ids.Length, dOut);
        stream.Synchronize();
        float[] got = Gpu.DownloadBf16(dOut);
        for (int t = 0; t < ids.Length; t++)
        for (int i = 0; i < hidden; i++)
        {
            float expected = ids[t] >= 0 && ids[t] < vocab ? table[ids[t] * hidden + i] : 0f;
            Assert.Equal(expected, got[t * hidden + i]);
        }
    }

    [Theory]
    [InlineData(5, 131)]
    [InlineData(3, 4099)] // wider than one block: threads stride over the row
    [InlineData(1, 7)]
    [InlineData(4, 4096)]   // 16-byte pieces (add_rmsnorm8): 128 threads of 4, or 512 of 1
    [InlineData(3, 3584)]   // 16-byte pieces: 128 threads of up to 4, or 448 of 1
    [InlineData(2, 20480)]  // 16-byte pieces, three per thread
    [InlineData(2, 32776)]  // a multiple of 8 too wide for the register pieces: the strided kernel
    [InlineData(5, 24)]     // 16-byte pieces, fewer than a warp
    public void Add_rmsnorm_matches_reference(int rows, int dim)
    {
        var gpu = Gpu.Require();
        float[] residual = Gpu.RandomBf16(rows * dim, 10 + dim, 2f);
        float[] x = Gpu.RandomBf16(rows * dim, 11 + dim);
        float[] weight = Gpu.RandomBf16(dim, 12 + dim, 1.5f);
        var expRes = (float[])residual.Clone();
        var expY = new float[rows * dim];
        RmsNorm.AddAndReference(expRes, x, weight, expY, rows, dim, 1e-5f);
        int before = ElementwiseKernels.NormPiecesPerThread;
        try
        {
            // add_rmsnorm8 with at least 1 and at least 4 pieces a thread (the default): other thread counts per row
            foreach (int pieces in new[] { 1, 4 })
            {
                ElementwiseKernels.NormPiecesPerThread = pieces;
                using var dRes = gpu.UploadBf16(residual);
                using var dX = gpu.UploadBf16(x);
                using var dW = gpu.UploadBf16(weight);
                using var dY = gpu.Device.Allocate<ushort>(rows * dim);
                using var stream = gpu.Device.CreateStream();
                gpu.Elementwise.AddRmsNorm(stream, dRes, dX, dW, dY, rows, dim, 1e-5f);
                stream.Synchronize();
                TestData.Close(expRes, Gpu.DownloadBf16(dRes), 1e-2, 1e-3, $"residual ({pieces} piece(s) a thread)");
                TestData.Close(expY, Gpu.DownloadBf16(dY), 1e-2, 2e-3, $"y ({pieces} piece(s) a thread)");
            }
        }
        finally { ElementwiseKernels.NormPiecesPerThread = before; }
    }

    [Theory]
    [InlineData(333)]
    [InlineData(336)] // 16-byte pieces (add_rmsnorm8)
    public void Rmsnorm_in_place_matches_reference(int dim)
    {
        var gpu = Gpu.Require();
        const int rows = 9;
        float[] x = Gpu.RandomBf16(rows * dim, 20, 3f);
        float[] weight = Gpu.RandomBf16(dim, 21);
        using var dX = gpu.UploadBf16(x);
        using var dW = gpu.UploadBf16(weight);
        using var stream = gpu.Device.CreateStream();
        gpu.Elementwise.RmsNorm(stream, dX, dW, dX, rows, dim, 1e-6f); // y aliases x
        stream.Synchronize();
        var expected = new float[rows * dim];
        RmsNorm.Reference(x, weight, expected, rows, dim, 1e-6f);
        TestData.Close(expected, Gpu.DownloadBf16(dX), 1e-2, 2e-3, "y");
    }

    [Theory]
    [InlineData(7, 3, 34, false, false)]
    [InlineData(5, 4, 128, true, false)]  // q inside a wider fused row
    [InlineData(6, 2, 64, false, true)]   // table rows picked by positions
    [InlineData(3, 1, 5, false, false)]   // odd head dim: the last channel is left alone, as in the reference
    public void Rope_matches_reference(int tokens, int heads, int headDim, bool strided, bool withPositions)
    {
        var gpu = Gpu.Require();
        int half = headDim / 2, width = heads * headDim, rowStride = strided ? width + 3 * headDim : width;
        float[] rows = Gpu.RandomBf16(tokens * rowStride, 30 + headDim, 2f);
        const int tableRows = 50;
        float[] cos = TestData.Random(tableRows * half, 31), sin = TestData.Random(tableRows * half, 32);
        int[] positions = Enumerable.Range(0, tokens).Select(t => (t * 7 + 3) % tableRows).ToArray();

        using var dX = gpu.UploadBf16(rows);
        using var dCos = gpu.Upload<float>(cos);
        using var dSin = gpu.Upload<float>(sin);
        using var dPos = gpu.Upload<int>(positions);
        using var stream = gpu.Device.CreateStream();
        gpu.Elementwise.Rope(stream, dX, tokens, heads, headDim, rowStride, dCos, dSin, tableRows,
            withPositions ? dPos.Span : default);
        stream.Synchronize();
        float[] got = Gpu.DownloadBf16(dX);

        // reference on the packed (tokens, heads, headDim) view with the table rows each token uses
        var packed = new float[tokens * width];
        var c = new float[tokens * half];
        var s = new float[tokens * half];
        for (int t = 0; t < tokens; t++)
        {
            Array.Copy(rows, t * rowStride, packed, t * width, width);
            int row = withPositions ? positions[t] : t;
            Array.Copy(cos, row * half, c, t * half, half);
            Array.Copy(sin, row * half, s, t * half, half);
        }
        Rope.Reference(packed, tokens, heads, headDim, c, s);
        var expected = (float[])rows.Clone();
        for (int t = 0; t < tokens; t++) Array.Copy(packed, t * width, expected, t * rowStride, width);
        TestData.Close(expected, got, 1e-2, 2e-3, "rope"); // the padding after each row must be untouched too
    }

    [Theory]
    [InlineData(3, 517, false)]
    [InlineData(4, 96, true)] // fused [gate | up] rows, 16-byte pieces (swiglu8)
    [InlineData(3, 100, true)] // fused rows whose stride is not a multiple of 8: the scalar kernel
    [InlineData(5, 1032, false)] // 16-byte pieces
    public void Swiglu_matches_reference(int rows, int cols, bool fused)
    {
        var gpu = Gpu.Require();
        float[] gate, up;
        using var stream = gpu.Device.CreateStream();
        using var dY = gpu.Device.Allocate<ushort>(rows * cols);
        if (fused)
        {
            float[] gu = Gpu.RandomBf16(rows * 2 * cols, 40, 4f);
            gate = new float[rows * cols];
            up = new float[rows * cols];
            for (int r = 0; r < rows; r++)
            {
                Array.Copy(gu, r * 2 * cols, gate, r * cols, cols);
                Array.Copy(gu, r * 2 * cols + cols, up, r * cols, cols);
            }
            using var dGu = gpu.UploadBf16(gu);
            gpu.Elementwise.SwiGlu(stream, dGu.Span, dGu.Span.Slice(cols), dY, rows, cols, 2 * cols, cols);
            stream.Synchronize();
        }
        else
        {
            gate = Gpu.RandomBf16(rows * cols, 41, 4f);
            up = Gpu.RandomBf16(rows * cols, 42, 2f);
            using var dG = gpu.UploadBf16(gate);
            using var dU = gpu.UploadBf16(up);
            gpu.Elementwise.SwiGlu(stream, dG, dU, dY, rows, cols, cols, cols);
            stream.Synchronize();
        }
        var expected = new float[rows * cols];
        SwiGlu.Reference(gate, up, expected);
        TestData.Close(expected, Gpu.DownloadBf16(dY), 1e-2, 1e-3, "swiglu");
    }

    [Fact]
    public void Launchers_reject_short_buffers_before_launching()
    {
        var gpu = Gpu.Require();
        using var small = gpu.Device.Allocate<ushort>(10);
        using var stream = gpu.Device.CreateStream();
        var e = Assert.Throws<ArgumentException>(() => gpu.Elementwise.RmsNorm(stream, small, small, small, 2, 8, 1e-5f));
        Assert.Contains("rows * dim", e.Message);
    }
}
