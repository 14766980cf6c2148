namespace Actors.Kernels.Cpu;

public static partial class RmsNorm
{
    /// <summary>Fast path (SIMD); same contract as <see cref="Reference"/>. Rows are short (hidden size), so one thread.</summary>
    public static unsafe void Compute(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, int dim, float eps)
    {
        Validate(x, weight, y, rows, dim);
        fixed (float* px = x, pw = weight, py = y)
            for (int r = 0; r < rows; r++)
                Row(px + (long)r * dim, null, pw, py + (long)r * dim, dim, eps);
    }

    /// <summary>Fast path of <see cref="AddAndReference"/>: residual += x; y = rmsnorm(residual) · weight, one pass per row for the add and sum of squares.</summary>
    public static unsafe void AddAndCompute(Span<float> residual, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y,
        int rows, int dim, float eps)
    {
        Shapes.Check(residual.Length >= (long)rows * dim, nameof(residual), "rows * dim");
        Validate(x, weight, y, rows, dim);
        fixed (float* pr = residual, px = x, pw = weight, py = y)
            for (int r = 0; r < rows; r++)
                Row(pr + (long)r * dim, px + (long)r * dim, pw, py + (long)r * dim, dim, eps);
    }

    /// <summary>One row: if add != null, src += add first (fused with the sum of squares); then y = src · inv · weight.</summary>
    private static unsafe void Row(float* src, float* add, float* weight, float* y, int dim, float eps)
    {
        if (V512.IsHardwareAccelerated && dim >= V512.Count) Row<V512>(src, add, weight, y, dim, eps);
        else if (V256.IsHardwareAccelerated && dim >= V256.Count) Row<V256>(src, add, weight, y, dim, eps);
        else Row<V128>(src, add, weight, y, dim, eps); // dim < 4 (or no SIMD): the scalar tails do the work
    }

    private static unsafe void Row<V>(float* src, float* add, float* weight, float* y, int dim, float eps) where V : struct, ISimdVector<V>
    {
        int vecEnd = dim - dim % V.Count;
        V s0 = V.Zero, s1 = V.Zero;
        int i = 0;
        for (; i + 2 * V.Count <= vecEnd; i += 2 * V.Count)
        {
            V v = V.Load(src + i), u = V.Load(src + i + V.Count);
            if (add != null)
            {
                v += V.Load(add + i); u += V.Load(add + i + V.Count);
                V.Store(v, src + i); V.Store(u, src + i + V.Count);
            }
            s0 = V.MultiplyAdd(v, v, s0);
            s1 = V.MultiplyAdd(u, u, s1);
        }
        if (i < vecEnd)
        {
            V v = V.Load(src + i);
            if (add != null) { v += V.Load(add + i); V.Store(v, src + i); }
            s0 = V.MultiplyAdd(v, v, s0);
            i += V.Count;
        }
        float ss = vecEnd == 0 ? 0 : V.Sum(s0 + s1);
        for (; i < dim; i++)
        {
            if (add != null) src[i] += add[i];
            ss += src[i] * src[i];
        }
        // The reference's scalar step, in double: the sum is the only f32 rounding that differs.
        float inv = (float)(1.0 / Math.Sqrt((double)ss / dim + eps));
        V vinv = V.Broadcast(inv);
        for (i = 0; i < vecEnd; i += V.Count)
            V.Store(V.Load(src + i) * vinv * V.Load(weight + i), y + i);
        for (; i < dim; i++) y[i] = src[i] * inv * weight[i];
    }
}
