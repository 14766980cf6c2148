namespace Actors.Kernels.Cpu;

public static partial class Argmax
{
    /// <summary>
    /// Scalar specification: index of the first greatest element (greedy sampling over logits). A NaN counts as
    /// greater than everything, so a NaN logit is reported rather than silently skipped; −0 and +0 are equal.
    /// </summary>
    public static int Reference(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty) throw new ArgumentException("span 'x' is empty: argmax needs at least one element", nameof(x));
        int best = 0;
        for (int i = 1; i < x.Length; i++)
        {
            if (float.IsNaN(x[best])) break;
            if (float.IsNaN(x[i]) || x[i] > x[best]) best = i;
        }
        return best;
    }
}
