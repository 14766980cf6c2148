using Actors.Engine.Paging;

namespace Actors.Engine.Tests.Paging;

public class HostPagePoolTests
{
    private static UInt128 H(int i) => new(0xabc, (ulong)i);

    /// <summary>Counts the host memory handed out, so a test can see the budget is kept.</summary>
    private sealed class CountingAllocator
    {
        public long Bytes;
        public int Slabs;
        public IHostBuffer Allocate(int bytes) { Bytes += bytes; Slabs++; return new ArrayHostBuffer(bytes); }
    }

    private static void Put(HostPagePool pool, int i)
    {
        Assert.True(pool.TryReserve(H(i), out var page, out bool existed));
        Assert.False(existed);
        page.Fill((byte)i);
    }

    [Fact]
    public void Pages_keep_their_bytes_and_the_least_recently_used_goes_first()
    {
        var pool = new HostPagePool(3, 8, b => new ArrayHostBuffer(b));
        Put(pool, 1); Put(pool, 2); Put(pool, 3);
        Assert.Equal([H(1), H(2), H(3)], pool.LeastRecentFirst());
        Assert.True(pool.Touch(H(1))); // 2 is now the least recently used
        Put(pool, 4);
        Assert.False(pool.Contains(H(2)));
        Assert.Equal([H(3), H(1), H(4)], pool.LeastRecentFirst());
        Assert.Equal(1, pool.Evictions);
        foreach (int i in new[] { 1, 3, 4 })
        {
            Assert.True(pool.TryGet(H(i), out var bytes));
            Assert.All(bytes.ToArray(), b => Assert.Equal((byte)i, b));
        }
        // Reserving a held hash returns its bytes untouched and makes it the most recent.
        Assert.True(pool.TryReserve(H(3), out var again, out bool existed));
        Assert.True(existed);
        Assert.Equal(3, again[0]);
        Assert.Equal([H(1), H(4), H(3)], pool.LeastRecentFirst());
    }

    [Fact]
    public void Pinned_pages_are_never_evicted_and_a_pool_of_pinned_pages_refuses()
    {
        var pool = new HostPagePool(2, 4, b => new ArrayHostBuffer(b));
        Put(pool, 1); Put(pool, 2);
        Assert.True(pool.Pin(H(1)));
        Put(pool, 3); // evicts 2, the least recent unpinned
        Assert.True(pool.Contains(H(1)));
        Assert.False(pool.Contains(H(2)));
        Assert.True(pool.Pin(H(3)));
        Assert.False(pool.TryReserve(H(4), out _, out _));
        Assert.False(pool.Contains(H(4)));
        pool.Unpin(H(1));
        Put(pool, 4);
        Assert.False(pool.Contains(H(1)));
        Assert.Equal(2, pool.Count);
    }

    [Fact]
    public void A_zero_capacity_pool_holds_nothing()
    {
        var pool = new HostPagePool(0, 4, _ => throw new InvalidOperationException("no memory should be allocated"));
        Assert.False(pool.TryReserve(H(1), out _, out _));
        Assert.Equal(0, pool.Count);
    }

    [Fact]
    public void Removed_slots_are_reused_before_anything_is_evicted()
    {
        var pool = new HostPagePool(2, 4, b => new ArrayHostBuffer(b));
        Put(pool, 1); Put(pool, 2);
        Assert.True(pool.Remove(H(1)));
        Assert.False(pool.Remove(H(1)));
        Put(pool, 3);
        Assert.Equal(0, pool.Evictions);
        Assert.Equal([H(2), H(3)], pool.LeastRecentFirst());
    }

    [Theory]
    [InlineData(1, 7, 3)]
    [InlineData(2, 50, 1)]
    [InlineData(3, 13, 40)]
    public void The_budget_is_never_exceeded_and_eviction_follows_a_reference_LRU(int seed, int capacity, int pageBytes)
    {
        var rng = new Random(seed);
        var alloc = new CountingAllocator();
        var pool = new HostPagePool(capacity, pageBytes, alloc.Allocate);
        var reference = new LinkedList<int>(); // least recent first
        long evictions = 0;
        for (int step = 0; step < 5000; step++)
        {
            int key = rng.Next(capacity * 3);
            switch (rng.Next(3))
            {
                case 0:
                    Assert.True(pool.TryReserve(H(key), out var page, out bool existed));
                    Assert.Equal(reference.Contains(key), existed);
                    if (existed) { Assert.Equal((byte)key, page[0]); reference.Remove(key); }
                    else
                    {
                        page.Fill((byte)key);
                        if (reference.Count == capacity) { reference.RemoveFirst(); evictions++; }
                    }
                    reference.AddLast(key);
                    break;
                case 1:
                    Assert.Equal(reference.Contains(key), pool.Touch(H(key)));
                    if (reference.Remove(key)) reference.AddLast(key);
                    break;
                default:
                    Assert.Equal(reference.Remove(key), pool.Remove(H(key)));
                    break;
            }
            Assert.True(pool.Count <= capacity);
            Assert.True(alloc.Bytes <= (long)capacity * pageBytes);
            Assert.Equal(evictions, pool.Evictions);
        }
        Assert.Equal(reference.Select(H), pool.LeastRecentFirst());
        foreach (int key in reference)
        {
            Assert.True(pool.TryGet(H(key), out var bytes));
            Assert.All(bytes.ToArray(), b => Assert.Equal((byte)key, b));
        }
    }

    [Fact]
    public void Storage_grows_by_slabs_as_pages_arrive()
    {
        var alloc = new CountingAllocator();
        var pool = new HostPagePool(10, 16, alloc.Allocate, maxSlabBytes: 1024); // all 10 pages fit one slab
        Assert.Equal(0, alloc.Bytes);
        Put(pool, 1);
        Assert.Equal(1, alloc.Slabs);
        Assert.Equal(160, alloc.Bytes);
        // 4 pages per 70-byte slab; 10 pages: slabs of 4, 4, 2 pages, the second only when page 5 arrives.
        var sliced = new HostPagePool(10, 16, alloc.Allocate, maxSlabBytes: 70);
        for (int i = 0; i < 5; i++) Put(sliced, i);
        Assert.Equal(3, alloc.Slabs);
        Assert.Equal(128, sliced.AllocatedBytes);
        for (int i = 5; i < 12; i++) Put(sliced, i);
        Assert.Equal(160, sliced.AllocatedBytes);
        Assert.Equal(4, alloc.Slabs);
        for (int i = 2; i < 12; i++)
        {
            Assert.True(sliced.TryGet(H(i), out var bytes));
            Assert.All(bytes.ToArray(), b => Assert.Equal((byte)i, b)); // no two slots overlap
        }
    }
}
