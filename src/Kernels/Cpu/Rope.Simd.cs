namespace Actors.Kernels.Cpu;

public static partial class Rope
{
    /// <summary>Fast path (SIMD, multithreaded where it pays); same contract as <see cref="Reference"/>.</summary>
    public static void Compute(Span<float> x, int tokens, int heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin) =>
        Reference(x, tokens, heads, headDim, cos, sin); // placeholder until the SIMD version lands
}
