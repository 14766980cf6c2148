namespace Actors.Kernels.Cpu;

public static partial class SwiGlu
{
    /// <summary>Fast path (SIMD, vectorised exp); same contract as <see cref="Reference"/>. y may alias gate or up.</summary>
    public static unsafe void Compute(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        Shapes.Check(up.Length >= gate.Length, nameof(up), "gate.Length");
        Shapes.Check(y.Length >= gate.Length, nameof(y), "gate.Length");
        fixed (float* pg = gate, pu = up, py = y)
        {
            int n = gate.Length;
            if (V512.IsHardwareAccelerated && n >= V512.Count) Run<V512>(pg, pu, py, n);
            else if (V256.IsHardwareAccelerated && n >= V256.Count) Run<V256>(pg, pu, py, n);
            else Run<V128>(pg, pu, py, n);
        }
    }

    private static unsafe void Run<V>(float* gate, float* up, float* y, int n) where V : struct, ISimdVector<V>
    {
        V one = V.Broadcast(1f);
        int i = 0;
        // silu(g) = g / (1 + e^−g): for g → −∞, e^−g = ∞ and the quotient is −0, as it should be.
        for (; i <= n - V.Count; i += V.Count)
        {
            V g = V.Load(gate + i);
            V.Store(g / (one + V.Exp(V.Zero - g)) * V.Load(up + i), y + i);
        }
        for (; i < n; i++)
        {
            float g = gate[i];
            y[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }
}
