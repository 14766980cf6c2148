using Actors.Kernels.Cpu;

namespace Actors.Kernels.Tests;

public class PagedAttentionTests
{
    /// <summary>A pool with spare pages, the sequence's pages handed out in shuffled order, all filled with random K/V.</summary>
    private static (float[] Pool, int[] PageTable) MakePool(KvLayout layout, int positions, int seed)
    {
        int needed = (positions + layout.PageSize - 1) / layout.PageSize;
        int poolPages = needed + 3;
        var rng = new Random(seed);
        int[] order = Enumerable.Range(0, poolPages).ToArray();
        rng.Shuffle(order);
        float[] pool = TestData.Random(poolPages * layout.PageStride, seed + 1);
        return (pool, order[..Math.Max(needed, 1)]);
    }

    public static TheoryData<int, int, int, int, int, int, int> Cases() => new()
    {
        // pageSize, kvHeads, group, headDim, firstPosition, queries, layer
        { 16, 2, 1, 64, 0, 1, 0 },     // first token
        { 16, 2, 2, 64, 37, 1, 1 },    // decode step over three pages
        { 16, 1, 4, 64, 20, 13, 0 },   // cached prefix + chunk, GQA 4
        { 1, 2, 2, 17, 3, 9, 1 },      // page size 1: every position on its own page
        { 1, 1, 4, 5, 0, 6, 0 },       // tiny odd head
        { 5, 3, 1, 33, 11, 7, 1 },     // odd page size and head dim
        { 16, 2, 4, 128, 0, 40, 1 },   // prefill from scratch, big enough to go parallel
        { 16, 2, 7, 64, 150, 3, 0 },   // Qwen2.5-0.5B grouping (14 heads / 2 KV), long cached prefix
        { 4, 2, 2, 3, 2, 5, 1 },       // head dim below every vector width
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Compute_matches_reference(int pageSize, int kvHeads, int group, int headDim, int firstPosition, int queries, int layer)
    {
        var layout = new KvLayout(pageSize, Layers: 2, kvHeads, headDim);
        int heads = kvHeads * group;
        var (pool, pageTable) = MakePool(layout, firstPosition + queries, seed: pageSize * 31 + headDim);
        float[] q = TestData.Random(queries * heads * headDim, seed: 99 + queries, scale: 2f);
        float scale = 1f / MathF.Sqrt(headDim);
        float[] expected = new float[q.Length], actual = new float[q.Length];
        Array.Fill(actual, float.NaN);
        PagedAttention.Reference(q, queries, heads, firstPosition, pool, layout, layer, pageTable, scale, expected);
        PagedAttention.Compute(q, queries, heads, firstPosition, pool, layout, layer, pageTable, scale, actual);
        // Outputs are convex combinations of V rows in [−1, 1]: an absolute tolerance is magnitude-scaled.
        TestData.Close(expected, actual, 1e-5, 3e-6, "attention");
    }

    [Fact]
    public void A_chunk_over_a_cached_prefix_equals_the_same_rows_of_one_whole_prefill()
    {
        var layout = new KvLayout(PageSize: 16, Layers: 1, KvHeads: 2, HeadDim: 32);
        int heads = 4, total = 45, split = 29;
        var (pool, pageTable) = MakePool(layout, total, seed: 7);
        float[] q = TestData.Random(total * heads * 32, 8);
        float[] whole = new float[q.Length], tail = new float[(total - split) * heads * 32];
        PagedAttention.Compute(q, total, heads, 0, pool, layout, 0, pageTable, 0.2f, whole);
        PagedAttention.Compute(q.AsSpan(split * heads * 32), total - split, heads, split, pool, layout, 0, pageTable, 0.2f, tail);
        TestData.Close(whole.AsSpan(split * heads * 32), tail, 1e-6, 1e-7, "chunk vs whole");
    }

    [Fact]
    public void A_single_key_returns_its_value_and_pages_are_read_through_the_table()
    {
        // Position 0 lives in pool page 1 (the table says so); page 0 holds garbage that must not be read.
        var layout = new KvLayout(PageSize: 2, Layers: 1, KvHeads: 1, HeadDim: 3);
        float[] pool = new float[2 * layout.PageStride];
        Array.Fill(pool, 1e6f, 0, layout.PageStride);
        pool.AsSpan((int)layout.KeyOffset(1, 0, 0), 3).Fill(0.5f);
        float[] v = [1.5f, -2f, 3.25f];
        v.CopyTo(pool.AsSpan((int)layout.ValueOffset(1, 0, 0)));
        float[] output = new float[6];
        PagedAttention.Compute(new float[] { 1, 2, 3, -1, 0, 4 }, 1, 2, 0, pool, layout, 0, [1], 1f, output);
        Assert.Equal([1.5f, -2f, 3.25f, 1.5f, -2f, 3.25f], output);
    }

    [Fact]
    public void Causality_the_first_query_ignores_later_keys()
    {
        var layout = new KvLayout(PageSize: 4, Layers: 1, KvHeads: 1, HeadDim: 8);
        var (pool, pageTable) = MakePool(layout, 6, seed: 3);
        float[] q = TestData.Random(6 * 8, 4);
        float[] a = new float[48];
        PagedAttention.Compute(q, 6, 1, 0, pool, layout, 0, pageTable, 0.5f, a);
        // Changing keys and values at positions 1.. leaves query 0 unchanged.
        for (int p = 1; p < 6; p++)
        {
            pool.AsSpan((int)layout.KeyOffset(pageTable[p / 4], 0, p % 4), 8).Fill(9f);
            pool.AsSpan((int)layout.ValueOffset(pageTable[p / 4], 0, p % 4), 8).Fill(-9f);
        }
        float[] b = new float[48];
        PagedAttention.Compute(q, 6, 1, 0, pool, layout, 0, pageTable, 0.5f, b);
        Assert.Equal(a.AsSpan(0, 8).ToArray(), b.AsSpan(0, 8).ToArray());
        Assert.NotEqual(a.AsSpan(8, 8).ToArray(), b.AsSpan(8, 8).ToArray());
    }

    [Fact]
    public void Bad_arguments_are_rejected_with_the_argument_name()
    {
        var layout = new KvLayout(PageSize: 4, Layers: 2, KvHeads: 2, HeadDim: 4);
        float[] pool = new float[3 * layout.PageStride], q = new float[2 * 4 * 4], o = new float[2 * 4 * 4];
        void Run(int heads = 4, int layer = 0, int[]? table = null, int queries = 2, int first = 3, float[]? output = null) =>
            PagedAttention.Compute(q, queries, heads, first, pool, layout, layer, table ?? [0, 2], 1f, output ?? o);
        Run(); // valid: positions 0..4 on pages 0 and 2
        Assert.Equal("heads", Assert.Throws<ArgumentException>(() => Run(heads: 3)).ParamName);
        Assert.Equal("layer", Assert.Throws<ArgumentOutOfRangeException>(() => Run(layer: 2)).ParamName);
        Assert.Equal("pageTable", Assert.Throws<ArgumentException>(() => Run(table: [0])).ParamName);
        var outside = Assert.Throws<ArgumentOutOfRangeException>(() => Run(table: [0, 3]));
        Assert.Equal("pageTable", outside.ParamName);
        Assert.Contains("pageTable[1] = 3", outside.Message);
        Assert.Equal("pageTable", Assert.Throws<ArgumentOutOfRangeException>(() => Run(table: [-1, 0])).ParamName);
        Assert.Equal("output", Assert.Throws<ArgumentException>(() => Run(output: new float[31])).ParamName);
        Assert.Equal("firstPosition", Assert.Throws<ArgumentOutOfRangeException>(() => Run(first: -1)).ParamName);
        Assert.Equal("layout", Assert.Throws<ArgumentException>(() =>
            PagedAttention.Compute(q, 1, 4, 0, pool, layout with { PageSize = 0 }, 0, [0], 1f, o)).ParamName);
        // The reference applies the same checks.
        Assert.Equal("pageTable", Assert.Throws<ArgumentOutOfRangeException>(() =>
            PagedAttention.Reference(q, 2, 4, 3, pool, layout, 0, [0, 3], 1f, o)).ParamName);
    }
}
