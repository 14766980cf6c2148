namespace Actors.Kernels.Cpu;

public static partial class Softmax
{
    /// <summary>Fast path (SIMD, three passes: max, exp and sum, scale); same contract as <see cref="Reference"/>.</summary>
    public static unsafe void Compute(Span<float> x)
    {
        fixed (float* p = x)
        {
            if (V512.IsHardwareAccelerated && x.Length >= V512.Count) Run<V512>(p, x.Length);
            else if (V256.IsHardwareAccelerated && x.Length >= V256.Count) Run<V256>(p, x.Length);
            else Run<V128>(p, x.Length);
        }
    }

    private static unsafe void Run<V>(float* x, int n) where V : struct, ISimdVector<V>
    {
        if (n == 0) return;
        float max = Argmax.Max<V>(x, n);
        V vmax = V.Broadcast(max), s0 = V.Zero;
        int i = 0;
        for (; i <= n - V.Count; i += V.Count)
        {
            V e = V.Exp(V.Load(x + i) - vmax);
            V.Store(e, x + i);
            s0 += e;
        }
        float sum = n >= V.Count ? V.Sum(s0) : 0;
        for (; i < n; i++) { x[i] = MathF.Exp(x[i] - max); sum += x[i]; }
        // Multiply by the reciprocal: one rounding more than dividing, far inside f32 tolerance, and much cheaper.
        float inv = 1f / sum;
        V vinv = V.Broadcast(inv);
        for (i = 0; i <= n - V.Count; i += V.Count) V.Store(V.Load(x + i) * vinv, x + i);
        for (; i < n; i++) x[i] *= inv;
    }
}
