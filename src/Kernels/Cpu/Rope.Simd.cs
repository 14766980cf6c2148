namespace Actors.Kernels.Cpu;

public static partial class Rope
{
    /// <summary>
    /// Fast path (SIMD over the half head); same contract as <see cref="Reference"/> and bit-identical to it: the same
    /// f32 multiplies and adds in the same order, no FMA contraction.
    /// </summary>
    public static unsafe void Compute(Span<float> x, int tokens, int heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = Validate(x, tokens, heads, headDim, cos, sin);
        fixed (float* px = x, pc = cos, ps = sin)
        {
            if (V512.IsHardwareAccelerated && half >= V512.Count) Run<V512>(px, tokens, heads, headDim, pc, ps);
            else if (V256.IsHardwareAccelerated && half >= V256.Count) Run<V256>(px, tokens, heads, headDim, pc, ps);
            else Run<V128>(px, tokens, heads, headDim, pc, ps); // half < 4 (or no SIMD): the scalar tail does it
        }
    }

    private static unsafe void Run<V>(float* x, int tokens, int heads, int headDim, float* cos, float* sin) where V : struct, ISimdVector<V>
    {
        int half = headDim / 2, vecEnd = half - half % V.Count;
        for (int t = 0; t < tokens; t++)
        {
            float* c = cos + (long)t * half, s = sin + (long)t * half;
            for (int h = 0; h < heads; h++)
            {
                float* lo = x + ((long)t * heads + h) * headDim, hi = lo + half; // (tokens, heads, headDim)
                int i = 0;
                for (; i < vecEnd; i += V.Count)
                {
                    V a = V.Load(lo + i), b = V.Load(hi + i), cv = V.Load(c + i), sv = V.Load(s + i);
                    V.Store(a * cv - b * sv, lo + i);
                    V.Store(b * cv + a * sv, hi + i);
                }
                for (; i < half; i++)
                {
                    float a = lo[i], b = hi[i];
                    lo[i] = a * c[i] - b * s[i];
                    hi[i] = b * c[i] + a * s[i];
                }
            }
        }
    }
}
