using Actors.Kernels.Cpu;

namespace Actors.Kernels.Tests;

public class MatMulTests
{
    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 1, 1, 1 }, { 0, 5, 3 }, { 3, 0, 4 }, { 2, 3, 0 }, { 1, 3, 2 }, { 2, 7, 9 }, { 3, 17, 5 }, { 5, 16, 8 },
        { 4, 15, 4 }, { 6, 31, 13 }, { 7, 129, 33 }, { 9, 64, 17 }, { 1, 896, 131 }, { 13, 100, 70 }, { 70, 33, 21 },
        { 2, 500, 300 }, { 1, 4864, 37 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Compute_matches_reference(int rows, int k, int n)
    {
        foreach (bool withBias in new[] { false, true })
        foreach (int threads in new[] { 1, 3 })
        {
            float[] x = TestData.Random(rows * k, seed: rows * 7919 + k), w = TestData.Random(n * k, seed: n * 104729 + k, scale: 2f);
            float[] bias = withBias ? TestData.Random(n, seed: n) : [];
            float[] expected = new float[rows * n], actual = new float[rows * n];
            Array.Fill(actual, float.NaN); // every output must be written
            MatMul.Reference(x, w, bias, expected, rows, k, n);
            MatMul.Compute(x, w, bias, actual, rows, k, n, threads);
            // f32 accumulation error scales with Σ|x·w|, not with the (possibly cancelling) result.
            var mag = new float[rows * n];
            for (int r = 0; r < rows; r++)
            for (int j = 0; j < n; j++)
            {
                double s = withBias ? Math.Abs(bias[j]) : 0;
                for (int i = 0; i < k; i++) s += Math.Abs((double)x[r * k + i] * w[j * k + i]);
                mag[r * n + j] = (float)s;
            }
            TestData.Close(expected, actual, mag, 1e-5, 1e-30, $"({rows},{k},{n}) bias={withBias} threads={threads}");
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ComputeBf16_matches_reference(int rows, int k, int n)
    {
        float[] x = TestData.Random(rows * k, seed: rows + k);
        ushort[] w = TestData.Random(n * k, seed: n + k, scale: 3f).Select(v => (ushort)(BitConverter.SingleToInt32Bits(v) >> 16)).ToArray();
        float[] bias = TestData.Random(n, seed: 5);
        foreach (int threads in new[] { 1, 2 })
        {
            float[] expected = new float[rows * n], actual = new float[rows * n];
            Array.Fill(actual, float.NaN);
            MatMul.ReferenceBf16(x, w, bias, expected, rows, k, n);
            MatMul.ComputeBf16(x, w, bias, actual, rows, k, n, threads);
            var mag = new float[rows * n];
            for (int r = 0; r < rows; r++)
            for (int j = 0; j < n; j++)
            {
                double s = Math.Abs(bias[j]);
                for (int i = 0; i < k; i++) s += Math.Abs((double)x[r * k + i] * MatMul.Bf16ToSingle(w[j * k + i]));
                mag[r * n + j] = (float)s;
            }
            TestData.Close(expected, actual, mag, 1e-5, 1e-30, $"bf16 ({rows},{k},{n}) threads={threads}");
        }
    }

    [Fact]
    public void Bf16_bits_widen_exactly()
    {
        Assert.Equal(1f, MatMul.Bf16ToSingle(0x3F80));
        Assert.Equal(-3f, MatMul.Bf16ToSingle(0xC040));
        Assert.Equal(float.NegativeInfinity, MatMul.Bf16ToSingle(0xFF80));
        // (1, 2) · ((1, 1.5), (−3, 0.5))ᵀ with weights given as bf16 bits.
        float[] y = new float[2];
        MatMul.ComputeBf16([1, 2], [0x3F80, 0x3FC0, 0xC040, 0x3F00], [], y, 1, 2, 2);
        Assert.Equal([4f, -2f], y);
    }

    [Fact]
    public void Large_parallel_product_matches_reference_on_sampled_outputs()
    {
        // Big enough to take the parallel path with many tasks and row blocks: (37, 300) · (1000, 300)ᵀ.
        int rows = 37, k = 300, n = 1000;
        float[] x = TestData.Random(rows * k, 1), w = TestData.Random(n * k, 2), bias = TestData.Random(n, 3);
        float[] expected = new float[rows * n], actual = new float[rows * n];
        MatMul.Reference(x, w, bias, expected, rows, k, n);
        MatMul.Compute(x, w, bias, actual, rows, k, n);
        TestData.Close(expected, actual, relative: 0, absolute: 1e-4, "(37,300,1000)");
    }

    [Fact]
    public void Infinite_inputs_in_the_k_tail_do_not_leak_into_other_lanes()
    {
        // k = 20 → one full 16-lane vector plus a 4-lane overlapped tail; an ∞ in lane 15 is counted once.
        int rows = 4, k = 20, n = 4;
        float[] x = TestData.Random(rows * k, 5), w = TestData.Random(n * k, 6);
        w[15] = float.PositiveInfinity;
        for (int r = 0; r < rows; r++) x[r * k + 15] = 1;
        float[] expected = new float[rows * n], actual = new float[rows * n];
        MatMul.Reference(x, w, [], expected, rows, k, n);
        MatMul.Compute(x, w, [], actual, rows, k, n);
        for (int r = 0; r < rows; r++) Assert.Equal(float.PositiveInfinity, actual[r * n]); // column 0 meets the ∞
        TestData.Close(expected, actual, 1e-5, 1e-5, "outputs");
        Assert.DoesNotContain(actual, float.IsNaN);
    }

    [Fact]
    public void Short_spans_and_negative_sizes_are_rejected_with_the_argument_name()
    {
        float[] x = new float[6], w = new float[6], y = new float[4];
        Assert.Equal("x", Assert.Throws<ArgumentException>(() => MatMul.Compute(x.AsSpan(0, 5), w, [], y, 2, 3, 2)).ParamName);
        Assert.Equal("w", Assert.Throws<ArgumentException>(() => MatMul.Compute(x, w.AsSpan(0, 5), [], y, 2, 3, 2)).ParamName);
        Assert.Equal("bias", Assert.Throws<ArgumentException>(() => MatMul.Compute(x, w, new float[1], y, 2, 3, 2)).ParamName);
        Assert.Equal("y", Assert.Throws<ArgumentException>(() => MatMul.Compute(x, w, [], y.AsSpan(0, 3), 2, 3, 2)).ParamName);
        Assert.Equal("rows", Assert.Throws<ArgumentOutOfRangeException>(() => MatMul.Compute(x, w, [], y, -1, 3, 2)).ParamName);
        Assert.Equal("maxThreads", Assert.Throws<ArgumentOutOfRangeException>(() => MatMul.Compute(x, w, [], y, 2, 3, 2, 0)).ParamName);
    }
}
