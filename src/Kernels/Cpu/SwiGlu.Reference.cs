namespace Actors.Kernels.Cpu;

public static partial class SwiGlu
{
    /// <summary>Scalar specification: y = silu(gate) · up, silu(g) = g / (1 + e^−g). Spans of equal length.</summary>
    public static void Reference(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        Shapes.Check(up.Length >= gate.Length, nameof(up), "gate.Length");
        Shapes.Check(y.Length >= gate.Length, nameof(y), "gate.Length");
        for (int i = 0; i < gate.Length; i++)
        {
            double g = gate[i];
            y[i] = (float)(g / (1 + Math.Exp(-g)) * up[i]);
        }
    }
}
