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
        Validate(x, w, bias, y, rows, k, n);
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

    /// <summary>
    /// Scalar specification with bfloat16 weights: as <see cref="Reference"/>, w (n, k) holding raw bf16 bits, each
    /// widened exactly to f32 (bits &lt;&lt; 16). Lets a bf16 checkpoint be served without doubling its memory and its
    /// decode traffic.
    /// </summary>
    public static void ReferenceBf16(ReadOnlySpan<float> x, ReadOnlySpan<ushort> w, ReadOnlySpan<float> bias, Span<float> y,
        int rows, int k, int n)
    {
        Validate(x, w, bias, y, rows, k, n);
        var wf = new float[(long)n * k];
        for (int i = 0; i < wf.Length; i++) wf[i] = Bf16ToSingle(w[i]);
        Reference(x, wf, bias, y, rows, k, n);
    }

    /// <summary>Exact bfloat16 → f32: the bf16 bits are the upper 16 bits of the f32.</summary>
    public static float Bf16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);
}
