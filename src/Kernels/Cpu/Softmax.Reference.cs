namespace Actors.Kernels.Cpu;

public static partial class Softmax
{
    /// <summary>
    /// Scalar specification of the numerically stable softmax, in place: x[i] = e^(x[i] − max) / Σ e^(x[j] − max),
    /// computed in double. An empty span is left as is; −∞ entries get probability 0 (all −∞ gives NaN, as PyTorch).
    /// </summary>
    public static void Reference(Span<float> x)
    {
        if (x.IsEmpty) return;
        double max = double.NegativeInfinity;
        foreach (float v in x) max = Math.Max(max, v);
        var e = new double[x.Length];
        double sum = 0;
        for (int i = 0; i < x.Length; i++) { e[i] = Math.Exp(x[i] - max); sum += e[i]; }
        for (int i = 0; i < x.Length; i++) x[i] = (float)(e[i] / sum);
    }
}
