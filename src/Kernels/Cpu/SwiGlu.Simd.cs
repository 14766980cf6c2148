namespace Actors.Kernels.Cpu;

public static partial class SwiGlu
{
    /// <summary>Fast path (SIMD, multithreaded where it pays); same contract as <see cref="Reference"/>.</summary>
    public static void Compute(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y) =>
        Reference(gate, up, y); // placeholder until the SIMD version lands
}
