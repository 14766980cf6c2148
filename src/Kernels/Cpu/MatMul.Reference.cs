namespace Actors.Kernels.Cpu;

public static partial class MatMul
{
    /// <summary>
    /// Scalar specification: y (rows, n) = x (rows, k) · wᵀ (+ bias), with w (n, k) row-major as PyTorch's Linear
    /// stores it. An empty <paramref name="bias"/> means none. Accumulates in double so it can judge the fast path.
    /// </summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y,
        int rows, int k, int n)
    {
        Shapes.Check(x.Length >= (long)rows * k, nameof(x), "rows * k");
        Shapes.Check(w.Length >= (long)n * k, nameof(w), "n * k");
        Shapes.Check(bias.IsEmpty || bias.Length >= n, nameof(bias), "n");
        Shapes.Check(y.Length >= (long)rows * n, nameof(y), "rows * n");
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Slice(r * k, k);
            for (int j = 0; j < n; j++)
            {
                var wj = w.Slice(j * k, k);
                double acc = bias.IsEmpty ? 0 : bias[j];
                for (int i = 0; i < k; i++) acc += (double)xr[i] * wj[i];
                y[r * n + j] = (float)acc;
            }
        }
    }
}
