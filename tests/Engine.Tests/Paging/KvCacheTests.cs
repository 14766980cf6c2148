using Actors.Engine.Paging;
using Actors.Kernels.Cpu;

namespace Actors.Engine.Tests.Paging;

public class KvCacheTests
{
    [Fact]
    public void Write_puts_K_and_V_where_the_layout_says_and_nowhere_else()
    {
        var layout = new KvLayout(PageSize: 3, Layers: 2, KvHeads: 2, HeadDim: 4);
        var cache = new KvCache(layout, pages: 5);
        Assert.Equal(5 * layout.PageStride, cache.Pool.Length);
        var k = Enumerable.Range(1, 8).Select(i => (float)i).ToArray();
        var v = Enumerable.Range(101, 8).Select(i => (float)i).ToArray();
        cache.Write(layer: 1, page: 3, slot: 2, k, v);
        // Hand-derived offsets: page 3 * 96 + layer 1 * 48 + slot 2 * 8 = 352 for K; V is one K block (3*8) later.
        Assert.Equal(96, layout.PageStride);
        Assert.Equal(k, cache.Pool.AsSpan(352, 8).ToArray());
        Assert.Equal(v, cache.Pool.AsSpan(376, 8).ToArray());
        Assert.Equal(k, cache.Key(1, 3, 2).ToArray());
        Assert.Equal(v, cache.Value(1, 3, 2).ToArray());
        Assert.Equal(16, cache.Pool.Count(x => x != 0));
    }

    [Fact]
    public void Write_rejects_bad_coordinates_and_lengths()
    {
        var layout = new KvLayout(4, 1, 1, 2);
        var cache = new KvCache(layout, 2);
        float[] two = [1, 2];
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Write(0, 2, 0, two, two));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Write(1, 0, 0, two, two));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Write(0, 0, 4, two, two));
        Assert.Throws<ArgumentException>(() => cache.Write(0, 0, 0, [1f], two));
    }

    [Fact]
    public void PagesFor_divides_bytes_by_the_page_size_in_bytes()
    {
        var layout = new KvLayout(16, 2, 2, 8); // 2 * 2*16*16 = 1024 floats = 4096 bytes a page
        Assert.Equal(0, KvCache.PagesFor(4095, layout));
        Assert.Equal(1, KvCache.PagesFor(4096, layout));
        Assert.Equal(10, KvCache.PagesFor(10 * 4096 + 5, layout));
    }
}
