namespace Actors.Kernels.Cpu;

public static partial class PagedAttention
{
    /// <summary>Fast path (SIMD, multithreaded where it pays); same contract as <see cref="Reference"/>.</summary>
    public static void Compute(ReadOnlySpan<float> q, int queries, int heads, int firstPosition, ReadOnlySpan<float> kvPool, KvLayout layout, int layer, ReadOnlySpan<int> pageTable, float scale, Span<float> output) =>
        Reference(q, queries, heads, firstPosition, kvPool, layout, layer, pageTable, scale, output); // placeholder until the SIMD version lands
}
