namespace Actors.Kernels.Cpu;

public static partial class RmsNorm
{
    /// <summary>
    /// Scalar specification, as transformers' LlamaRMSNorm: y = x / sqrt(mean(x²) + eps) * weight, per row.
    /// x, y: (rows, dim) row-major; weight: (dim). y may alias x.
    /// </summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, int dim, float eps)
    {
        Shapes.Check(x.Length >= (long)rows * dim, nameof(x), "rows * dim");
        Shapes.Check(weight.Length >= dim, nameof(weight), "dim");
        Shapes.Check(y.Length >= (long)rows * dim, nameof(y), "rows * dim");
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += (double)x[r * dim + i] * x[r * dim + i];
            float inv = (float)(1.0 / Math.Sqrt(ss / dim + eps));
            for (int i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i] * inv * weight[i];
        }
    }
}
