namespace Actors.Kernels.Cpu;

public static partial class RmsNorm
{
    /// <summary>
    /// Scalar specification, as transformers' LlamaRMSNorm: y = x / sqrt(mean(x²) + eps) * weight, per row.
    /// x, y: (rows, dim) row-major; weight: (dim). y may alias x.
    /// </summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, int dim, float eps)
    {
        Validate(x, weight, y, rows, dim);
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += (double)x[r * dim + i] * x[r * dim + i];
            float inv = (float)(1.0 / Math.Sqrt(ss / dim + eps));
            for (int i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i] * inv * weight[i];
        }
    }

    /// <summary>
    /// Scalar specification of the fused residual step of a decoder layer: residual += x, then
    /// y = rmsnorm(residual) · weight, per row. residual, x, y: (rows, dim) row-major; weight: (dim).
    /// y may alias x (each row of x is consumed before that row of y is written).
    /// </summary>
    public static void AddAndReference(Span<float> residual, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y,
        int rows, int dim, float eps)
    {
        Shapes.Check(residual.Length >= (long)rows * dim, nameof(residual), "rows * dim");
        Validate(x, weight, y, rows, dim);
        for (int i = 0; i < rows * dim; i++) residual[i] += x[i];
        Reference(residual, weight, y, rows, dim, eps);
    }

    private static void Validate(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, int dim)
    {
        Shapes.NonNegative(rows, nameof(rows));
        Shapes.NonNegative(dim, nameof(dim));
        Shapes.Check(x.Length >= (long)rows * dim, nameof(x), "rows * dim");
        Shapes.Check(weight.Length >= dim, nameof(weight), "dim");
        Shapes.Check(y.Length >= (long)rows * dim, nameof(y), "rows * dim");
    }
}
