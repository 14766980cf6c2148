using System.Numerics;

namespace Actors.Kernels.Cpu;

public static partial class Argmax
{
    /// <summary>Fast path (SIMD, two passes: the maximum, then its first position); same contract as <see cref="Reference"/>.</summary>
    public static unsafe int Compute(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty) throw new ArgumentException("span 'x' is empty: argmax needs at least one element", nameof(x));
        fixed (float* p = x)
        {
            if (V512.IsHardwareAccelerated && x.Length >= V512.Count) return Run<V512>(p, x.Length);
            if (V256.IsHardwareAccelerated && x.Length >= V256.Count) return Run<V256>(p, x.Length);
            return Run<V128>(p, x.Length);
        }
    }

    private static unsafe int Run<V>(float* x, int n) where V : struct, ISimdVector<V>
    {
        float max = Max<V>(x, n);
        if (float.IsNaN(max))
        {
            for (int j = 0; j < n; j++) if (float.IsNaN(x[j])) return j;
        }
        V vmax = V.Broadcast(max);
        int i = 0;
        for (; i <= n - V.Count; i += V.Count)
        {
            ulong bits = V.EqualsBits(V.Load(x + i), vmax);
            if (bits != 0) return i + BitOperations.TrailingZeroCount(bits);
        }
        for (; i < n; i++) if (x[i] == max) return i;
        throw new InvalidOperationException("unreachable: the maximum was not found again");
    }

    /// <summary>Greatest element of x (n ≥ 1), NaN if any element is NaN.</summary>
    internal static unsafe float Max<V>(float* x, int n) where V : struct, ISimdVector<V>
    {
        float max = float.NegativeInfinity;
        int i = 0;
        if (n >= V.Count)
        {
            V m = V.Load(x);
            for (i = V.Count; i <= n - V.Count; i += V.Count) m = V.Max(m, V.Load(x + i));
            max = V.MaxAcross(m);
        }
        for (; i < n; i++) max = MathF.Max(max, x[i]);
        return max;
    }
}
